using System.Text;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;

namespace ModelGateway.Providers.Gemini;

/// <summary>
/// Decodes Gemini's <c>streamGenerateContent?alt=sse</c> stream (each event a whole
/// <c>GenerateContentResponse</c>) into canonical events; a non-streamed answer is the same object, read
/// by <see cref="ReadWhole"/>. Thought parts become reasoning, text parts text, and function calls,
/// which Gemini sends whole, a tool-call start with a generated id plus one arguments delta. The chunk
/// with <c>finishReason</c> is the last one: Gemini has no other end marker.
/// </summary>
internal sealed class GeminiStreamDecoder(Stream body, Deployment deployment, int maxEventBytes) : SseStreamDecoder(body, maxEventBytes)
{
    private bool _started;
    private bool _reasoned;
    private bool _signed;
    private int _tools;
    private TokenUsage _usage;

    /// <summary>A whole (non-streamed) <c>GenerateContentResponse</c> as a canonical answer, or the error it carries.</summary>
    public static ChatResponse ReadWhole(ReadOnlySpan<byte> json, Deployment deployment, out UpstreamError? error)
    {
        error = null;
        using var decoder = new GeminiStreamDecoder(Stream.Null, deployment, int.MaxValue);
        decoder.Decode(default, json);
        var builder = new ChatResponseBuilder();
        while (decoder.TryRead(out var e))
        {
            if (e.Kind == StreamEventKind.Error)
            {
                error = e.Error;
                return new ChatResponse();
            }

            builder.Add(e);
        }

        return builder.Build();
    }

    protected override void Decode(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data)
    {
        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 256 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InvalidDataException("A Gemini stream event is not a JSON object.");
        }

        if (!_started)
        {
            // The id and model come last in a chunk, but Started must be the first event.
            _started = true;
            var (id, model) = ReadIdentity(reader);
            Emit(StreamEvent.Started(id, model));
        }

        string? finish = null;
        var counted = false;
        string? blocked = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("candidates"u8))
            {
                reader.Read();
                finish = ReadCandidates(ref reader, data);
            }
            else if (reader.ValueTextEquals("usageMetadata"u8))
            {
                reader.Read();
                counted = ReadUsage(ref reader);
            }
            else if (reader.ValueTextEquals("promptFeedback"u8))
            {
                reader.Read();
                blocked = ReadBlockReason(ref reader);
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                Emit(StreamEvent.Failed(GoogleErrors.InBand(data, deployment)));
                return;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (blocked is not null)
        {
            // The prompt itself was refused: no candidate comes, and asking again gets the same answer.
            Emit(StreamEvent.Failed(GoogleErrors.PromptBlocked(blocked)));
            return;
        }

        if (finish is not null)
        {
            var reason = GoogleErrors.MapFinishReason(finish, _tools > 0);
            if (reason != FinishReason.None)
            {
                Emit(StreamEvent.Finished(reason));
                IsComplete = true;
            }
        }

        if (counted)
        {
            Emit(StreamEvent.Counted(_usage));
        }
    }

    private static (string? Id, string? Model) ReadIdentity(Utf8JsonReader reader)
    {
        string? id = null;
        string? model = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("responseId"u8))
            {
                reader.Read();
                id = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("modelVersion"u8))
            {
                reader.Read();
                model = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return (id, model);
    }

    // Only the first candidate is read: the gateway asks for one. Returns its finishReason, if it has one yet.
    private string? ReadCandidates(ref Utf8JsonReader reader, ReadOnlySpan<byte> data)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            reader.Skip();
            return null;
        }

        string? finish = null;
        var first = true;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (!first || reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }

            first = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("content"u8))
                {
                    reader.Read();
                    ReadContent(ref reader, data);
                }
                else if (reader.ValueTextEquals("finishReason"u8))
                {
                    reader.Read();
                    finish = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }

        return finish;
    }

    private void ReadContent(ref Utf8JsonReader reader, ReadOnlySpan<byte> data)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!reader.ValueTextEquals("parts"u8))
            {
                reader.Read();
                reader.Skip();
                continue;
            }

            reader.Read();
            if (reader.TokenType != JsonTokenType.StartArray)
            {
                reader.Skip();
                continue;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                ReadPart(ref reader, data);
            }
        }
    }

    // A part's fields come in any order ("thought" after "text"): note where each is, then emit in a fixed order.
    private void ReadPart(ref Utf8JsonReader reader, ReadOnlySpan<byte> data)
    {
        var text = default(Utf8JsonReader);
        var hasText = false;
        var call = default(Utf8JsonReader);
        var hasCall = false;
        string? signature = null;
        var thought = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("text"u8))
            {
                reader.Read();
                hasText = reader.TokenType == JsonTokenType.String;
                text = reader;
            }
            else if (reader.ValueTextEquals("thought"u8))
            {
                reader.Read();
                thought = reader.TokenType == JsonTokenType.True;
            }
            else if (reader.ValueTextEquals("thoughtSignature"u8))
            {
                reader.Read();
                signature = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("functionCall"u8))
            {
                reader.Read();
                hasCall = reader.TokenType == JsonTokenType.StartObject;
                call = reader;
                reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (signature is { Length: > 0 } && _reasoned && !_signed && !thought)
        {
            // The signature closes the reasoning that came before; prefixed so that no other provider takes it for its own.
            _signed = true;
            Emit(StreamEvent.Signature(Raw(Encoding.UTF8.GetBytes(GeminiRequestMapper.SignaturePrefix + signature))));
        }

        if (hasText && text.ValueSpan.Length > 0)
        {
            if (thought)
            {
                _reasoned = true;
                Emit(StreamEvent.Reasoning(Text(ref text)));
            }
            else
            {
                Emit(StreamEvent.Text(Text(ref text)));
            }
        }

        if (hasCall)
        {
            ReadFunctionCall(ref call, data);
        }
    }

    private void ReadFunctionCall(ref Utf8JsonReader reader, ReadOnlySpan<byte> data)
    {
        string? name = null;
        string? id = null;
        ReadOnlyMemory<byte> arguments = default;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                name = reader.GetString();
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                id = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("args"u8))
            {
                reader.Read();
                var start = (int)reader.TokenStartIndex;
                reader.Skip();
                if (reader.TokenType == JsonTokenType.EndObject)
                {
                    arguments = Raw(data[start..(int)reader.BytesConsumed]);
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        // Gemini sends each call whole and (on most models) without an id: OpenAI clients need one to answer it.
        var index = _tools++;
        Emit(StreamEvent.ToolCall(index, id is { Length: > 0 } ? id : NewCallId(), name ?? string.Empty));
        Emit(StreamEvent.ToolArguments(index, arguments.IsEmpty ? Raw("{}"u8) : arguments));
    }

    private bool ReadUsage(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return false;
        }

        long prompt = 0;
        long candidates = 0;
        long cached = 0;
        long thoughts = 0;
        long toolPrompt = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            ref var target = ref prompt;
            if (reader.ValueTextEquals("promptTokenCount"u8))
            {
                target = ref prompt;
            }
            else if (reader.ValueTextEquals("candidatesTokenCount"u8))
            {
                target = ref candidates;
            }
            else if (reader.ValueTextEquals("cachedContentTokenCount"u8))
            {
                target = ref cached;
            }
            else if (reader.ValueTextEquals("thoughtsTokenCount"u8))
            {
                target = ref thoughts;
            }
            else if (reader.ValueTextEquals("toolUsePromptTokenCount"u8))
            {
                target = ref toolPrompt;
            }
            else
            {
                reader.Read();
                reader.Skip();
                continue;
            }

            reader.Read();
            if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0)
            {
                target = value;
            }
        }

        // promptTokenCount includes the cached tokens; candidatesTokenCount excludes the thinking, which OpenAI's
        // completion_tokens (and canonical Output) include. Zero counts are left out of Google's JSON.
        _usage = new TokenUsage
        {
            Input = prompt + toolPrompt,
            CacheRead = Math.Min(cached, prompt),
            Output = candidates + thoughts,
            Reasoning = thoughts,
            Reported = true,
        };
        return true;
    }

    private static string? ReadBlockReason(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return null;
        }

        string? reason = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("blockReason"u8))
            {
                reader.Read();
                reason = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return reason is null or "BLOCK_REASON_UNSPECIFIED" ? null : reason;
    }

    private static string NewCallId() => "call_" + Guid.NewGuid().ToString("N")[..24];
}
