using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.OpenAI;

/// <summary>
/// Writes canonical events as OpenAI <c>chat.completion.chunk</c> SSE events, the way OpenAI streams:
/// a role chunk first, content and tool-call deltas (tool calls keep their index and id, so the SDK's
/// accumulator assembles the exact arguments), a finish chunk, the usage chunk when the client asked
/// for it, and <c>data: [DONE]</c>. Reasoning goes out as <c>reasoning_content</c>, never as content.
/// </summary>
internal sealed class OpenAIStreamEncoder(string model, long created, bool includeUsage) : IStreamEncoder
{
    private static ReadOnlySpan<byte> DataPrefix => "data: "u8;
    private static ReadOnlySpan<byte> EventEnd => "\n\n"u8;

    private bool _roleSent;
    private TokenUsage _usage;
    private bool _hasUsage;

    /// <summary>The completion id every chunk carries; set from the upstream's id, or kept from an earlier attempt.</summary>
    public string? Id { get; set; }

    public string Model { get; set; } = model;

    public void Write(in StreamEvent streamEvent, IBufferWriter<byte> output)
    {
        switch (streamEvent.Kind)
        {
            case StreamEventKind.Started:
                Id ??= streamEvent.Id is { } upstream ? "chatcmpl-" + upstream : null;
                EnsureRole(output);
                break;
            case StreamEventKind.TextDelta:
                EnsureRole(output);
                WriteDelta(output, "content"u8, streamEvent.Utf8.Span);
                break;
            case StreamEventKind.ReasoningDelta:
                EnsureRole(output);
                WriteDelta(output, "reasoning_content"u8, streamEvent.Utf8.Span);
                break;
            case StreamEventKind.ToolCallStart:
                EnsureRole(output);
                WriteChunk(output, streamEvent, static (Utf8JsonWriter json, in StreamEvent e) =>
                {
                    json.WriteStartObject("delta"u8);
                    json.WriteStartArray("tool_calls"u8);
                    json.WriteStartObject();
                    json.WriteNumber("index"u8, e.Index);
                    json.WriteString("id"u8, e.Id);
                    json.WriteString("type"u8, "function"u8);
                    json.WriteStartObject("function"u8);
                    json.WriteString("name"u8, e.Name);
                    json.WriteString("arguments"u8, ""u8);
                    json.WriteEndObject();
                    json.WriteEndObject();
                    json.WriteEndArray();
                    json.WriteEndObject();
                    json.WriteNull("finish_reason"u8);
                });
                break;
            case StreamEventKind.ToolCallDelta:
                EnsureRole(output);
                WriteChunk(output, streamEvent, static (Utf8JsonWriter json, in StreamEvent e) =>
                {
                    json.WriteStartObject("delta"u8);
                    json.WriteStartArray("tool_calls"u8);
                    json.WriteStartObject();
                    json.WriteNumber("index"u8, e.Index);
                    json.WriteStartObject("function"u8);
                    json.WriteString("arguments"u8, e.Utf8.Span);
                    json.WriteEndObject();
                    json.WriteEndObject();
                    json.WriteEndArray();
                    json.WriteEndObject();
                    json.WriteNull("finish_reason"u8);
                });
                break;
            case StreamEventKind.Finish:
                EnsureRole(output);
                WriteChunk(output, streamEvent, static (Utf8JsonWriter json, in StreamEvent e) =>
                {
                    json.WriteStartObject("delta"u8);
                    json.WriteEndObject();
                    json.WriteString("finish_reason"u8, OpenAIResponseWriter.FinishText(e.Finish));
                });
                break;
            case StreamEventKind.Usage:
                _usage = streamEvent.Usage;
                _hasUsage = true;
                break;
        }
    }

    public void Complete(IBufferWriter<byte> output)
    {
        if (includeUsage && _hasUsage)
        {
            output.Write(DataPrefix);
            using (var json = new Utf8JsonWriter(output, JsonOutput.Options))
            {
                WriteHeader(json);
                json.WriteStartArray("choices"u8);
                json.WriteEndArray();
                OpenAIResponseWriter.WriteUsage(json, _usage);
                json.WriteEndObject();
            }

            output.Write(EventEnd);
        }

        output.Write("data: [DONE]\n\n"u8);
    }

    public void Fail(ApiError error, IBufferWriter<byte> output)
    {
        output.Write(DataPrefix);
        error.WriteJson(output);
        output.Write(EventEnd);
    }

    private void EnsureRole(IBufferWriter<byte> output)
    {
        if (_roleSent)
        {
            return;
        }

        _roleSent = true;
        WriteChunk(output, default, static (Utf8JsonWriter json, in StreamEvent _) =>
        {
            json.WriteStartObject("delta"u8);
            json.WriteString("role"u8, "assistant"u8);
            json.WriteString("content"u8, ""u8);
            json.WriteEndObject();
            json.WriteNull("finish_reason"u8);
        });
    }

    private void WriteDelta(IBufferWriter<byte> output, ReadOnlySpan<byte> field, ReadOnlySpan<byte> text)
    {
        output.Write(DataPrefix);
        using (var json = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            WriteHeader(json);
            json.WriteStartArray("choices"u8);
            json.WriteStartObject();
            json.WriteNumber("index"u8, 0);
            json.WriteStartObject("delta"u8);
            json.WriteString(field, text);
            json.WriteEndObject();
            json.WriteNull("logprobs"u8);
            json.WriteNull("finish_reason"u8);
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
        }

        output.Write(EventEnd);
    }

    private void WriteChunk(IBufferWriter<byte> output, in StreamEvent streamEvent, ChoiceWriter write)
    {
        output.Write(DataPrefix);
        using (var json = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            WriteHeader(json);
            json.WriteStartArray("choices"u8);
            json.WriteStartObject();
            json.WriteNumber("index"u8, 0);
            write(json, streamEvent);
            json.WriteNull("logprobs"u8);
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
        }

        output.Write(EventEnd);
    }

    private void WriteHeader(Utf8JsonWriter json)
    {
        Id ??= "chatcmpl-" + Guid.NewGuid().ToString("N");
        json.WriteStartObject();
        json.WriteString("id"u8, Id);
        json.WriteString("object"u8, "chat.completion.chunk"u8);
        json.WriteNumber("created"u8, created);
        json.WriteString("model"u8, Model);
        json.WriteNull("system_fingerprint"u8);
    }

    private delegate void ChoiceWriter(Utf8JsonWriter json, in StreamEvent streamEvent);
}
