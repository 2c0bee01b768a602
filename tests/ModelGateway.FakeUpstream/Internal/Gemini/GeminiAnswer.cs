using System.Globalization;
using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Gemini;

/// <summary>
/// A <c>GenerateContentResponse</c>, whole or as SSE chunks (<c>data: {..}</c> with CRLF line ends, as Google's front
/// ends write them). Parts come as thoughts, text, then function calls, which arrive whole in one chunk; the last
/// chunk carries <c>finishReason</c> and the full <c>usageMetadata</c>. Zero counts are left out, as proto3 JSON does.
/// </summary>
internal sealed class GeminiAnswer : IWireAnswer
{
    private readonly UpstreamBehavior _behavior;
    private readonly Reply _reply;
    private readonly string _model;
    private readonly bool _vertex;
    private readonly bool _sse;
    private readonly string _responseId = WireIds.GeminiResponse();
    private readonly string _createTime;

    // sse: false for streamGenerateContent without alt=sse, which streams one JSON array element by element.
    public GeminiAnswer(UpstreamBehavior behavior, Reply reply, string model, bool vertex, bool sse, DateTimeOffset now)
    {
        _sse = sse;
        _behavior = behavior;
        _reply = reply;
        _model = model;
        _vertex = vertex;
        _createTime = now.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
    }

    private bool Blocked => _behavior.PromptBlockReason is not null;

    private bool Refused => _reply.Stop == StopKind.Refusal && _reply.StopOverride is null;

    private string FinishReason => _reply.StopOverride ?? _reply.Stop switch
    {
        StopKind.MaxTokens => "MAX_TOKENS",
        StopKind.Refusal => "SAFETY",
        _ => "STOP",
    };

    private int PromptTokens => _reply.InputTokens + _reply.CacheReadTokens;

    private int CandidateTokens => Math.Max(0, _reply.OutputTokens - _reply.ThinkingTokens);

    public byte[] Body()
    {
        var parts = new List<Part>();
        if (!Refused)
        {
            if (_reply.Thinking is not null)
            {
                parts.Add(new Part(_reply.Thinking, Thought: true, null, null));
            }

            if (_reply.Text is not null)
            {
                parts.Add(new Part(_reply.Text, false, null, null));
            }

            foreach (var call in _reply.ToolCalls)
            {
                parts.Add(new Part(null, false, null, call));
            }

            SignFirstAnswerPart(parts);
        }

        return Chunk(parts, final: true);
    }

    public StreamPlan Stream()
    {
        var plan = new StreamPlan(Sse.ContentType.Replace("utf-8", "UTF-8", StringComparison.Ordinal))
        {
            FinishRidesOnLastPiece = true,
            MalformedEvent = "data: {not json\r\n\r\n"u8.ToArray(),
            ErrorEvent = GoogleErrors.StreamEvent(_behavior),
        };
        var chunks = new List<List<Part>>();
        if (!Blocked && !Refused)
        {
            foreach (var piece in _reply.ThinkingPieces)
            {
                chunks.Add([new Part(piece, Thought: true, null, null)]);
            }

            var signed = _reply.Thinking is null;
            foreach (var piece in _reply.TextPieces)
            {
                chunks.Add([new Part(piece, false, signed ? null : _reply.Signature, null)]);
                signed = true;
            }

            if (_reply.ToolCalls.Count > 0)
            {
                var calls = new List<Part>();
                foreach (var call in _reply.ToolCalls)
                {
                    calls.Add(new Part(null, false, signed ? null : _reply.Signature, call));
                    signed = true;
                }

                chunks.Add(calls);
            }
        }

        if (chunks.Count == 0)
        {
            chunks.Add([]);
        }

        if (!_sse)
        {
            plan = new StreamPlan(GoogleErrors.ContentType) { FinishRidesOnLastPiece = true, MalformedEvent = "{not json,\r\n"u8.ToArray() };
        }

        for (var i = 0; i < chunks.Count; i++)
        {
            var final = i == chunks.Count - 1;
            var json = Chunk(chunks[i], final);
            plan.AddPiece(_sse ? Sse.Data(json, crlf: true) : ArrayElement(json, first: i == 0, last: final), isTerminator: final);
        }

        return plan;
    }

    public WireError Error(UpstreamBehavior behavior) => GoogleErrors.ForBehavior(behavior, _model, _vertex);

    private static byte[] ArrayElement(byte[] json, bool first, bool last)
    {
        var prefix = first ? "["u8 : ",\r\n"u8;
        var suffix = last ? "]"u8 : ""u8;
        var bytes = new byte[prefix.Length + json.Length + suffix.Length];
        prefix.CopyTo(bytes);
        json.CopyTo(bytes.AsSpan(prefix.Length));
        suffix.CopyTo(bytes.AsSpan(prefix.Length + json.Length));
        return bytes;
    }

    private void SignFirstAnswerPart(List<Part> parts)
    {
        if (_reply.Thinking is null)
        {
            return;
        }

        for (var i = 0; i < parts.Count; i++)
        {
            if (!parts[i].Thought)
            {
                parts[i] = parts[i] with { Signature = _reply.Signature };
                return;
            }
        }
    }

    private byte[] Chunk(List<Part> parts, bool final) => JsonBytes.Write((self: this, parts, final), static (writer, state) =>
    {
        var (self, parts, final) = state;
        var reply = self._reply;
        writer.WriteStartObject();
        if (self.Blocked)
        {
            writer.WriteStartObject("promptFeedback"u8);
            writer.WriteString("blockReason"u8, self._behavior.PromptBlockReason);
            WriteSafetyRatings(writer, blocked: self._behavior.PromptBlockReason == "SAFETY");
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteStartArray("candidates"u8);
            writer.WriteStartObject();
            if (parts.Count > 0 || !(final && self.Refused))
            {
                writer.WriteStartObject("content"u8);
                writer.WriteStartArray("parts"u8);
                foreach (var part in parts)
                {
                    WritePart(writer, part);
                }

                writer.WriteEndArray();
                writer.WriteString("role"u8, "model"u8);
                writer.WriteEndObject();
            }

            if (final)
            {
                writer.WriteString("finishReason"u8, self.FinishReason);
                if (self.Refused)
                {
                    WriteSafetyRatings(writer, blocked: true);
                }
            }

            writer.WriteNumber("index"u8, 0);
            writer.WriteEndObject();
            writer.WriteEndArray();
        }

        writer.WriteStartObject("usageMetadata"u8);
        writer.WriteNumber("promptTokenCount"u8, self.PromptTokens);
        var completed = final && !self.Blocked;
        var candidates = completed && !self.Refused ? self.CandidateTokens : 0;
        var thoughts = completed ? reply.ThinkingTokens : 0;
        if (candidates > 0)
        {
            writer.WriteNumber("candidatesTokenCount"u8, candidates);
        }

        writer.WriteNumber("totalTokenCount"u8, (long)self.PromptTokens + candidates + thoughts);
        if (reply.CacheReadTokens > 0)
        {
            writer.WriteNumber("cachedContentTokenCount"u8, reply.CacheReadTokens);
        }

        writer.WriteStartArray("promptTokensDetails"u8);
        writer.WriteStartObject();
        writer.WriteString("modality"u8, "TEXT"u8);
        writer.WriteNumber("tokenCount"u8, self.PromptTokens);
        writer.WriteEndObject();
        writer.WriteEndArray();
        if (reply.CacheReadTokens > 0)
        {
            writer.WriteStartArray("cacheTokensDetails"u8);
            writer.WriteStartObject();
            writer.WriteString("modality"u8, "TEXT"u8);
            writer.WriteNumber("tokenCount"u8, reply.CacheReadTokens);
            writer.WriteEndObject();
            writer.WriteEndArray();
        }

        if (thoughts > 0)
        {
            writer.WriteNumber("thoughtsTokenCount"u8, thoughts);
        }

        if (self._vertex)
        {
            writer.WriteString("trafficType"u8, "ON_DEMAND"u8);
        }

        writer.WriteEndObject();
        writer.WriteString("modelVersion"u8, self._model);
        if (self._vertex)
        {
            writer.WriteString("createTime"u8, self._createTime);
        }

        writer.WriteString("responseId"u8, self._responseId);
        writer.WriteEndObject();
    });

    private static void WritePart(Utf8JsonWriter writer, Part part)
    {
        writer.WriteStartObject();
        if (part.Call is { } call)
        {
            writer.WriteStartObject("functionCall"u8);
            writer.WriteString("name"u8, call.Name);
            JsonBytes.RawOrString(writer, "args"u8, call.Arguments);
            writer.WriteEndObject();
        }
        else
        {
            JsonBytes.Text(writer, "text"u8, part.Text ?? string.Empty);
            if (part.Thought)
            {
                writer.WriteBoolean("thought"u8, true);
            }
        }

        if (part.Signature is not null)
        {
            writer.WriteString("thoughtSignature"u8, part.Signature);
        }

        writer.WriteEndObject();
    }

    private static void WriteSafetyRatings(Utf8JsonWriter writer, bool blocked)
    {
        writer.WriteStartArray("safetyRatings"u8);
        foreach (var (category, probability) in SafetyCategories)
        {
            writer.WriteStartObject();
            writer.WriteString("category"u8, category);
            writer.WriteString("probability"u8, blocked && category == "HARM_CATEGORY_DANGEROUS_CONTENT" ? "HIGH" : probability);
            if (blocked && category == "HARM_CATEGORY_DANGEROUS_CONTENT")
            {
                writer.WriteBoolean("blocked"u8, true);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static readonly (string Category, string Probability)[] SafetyCategories =
    [
        ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE"),
        ("HARM_CATEGORY_HATE_SPEECH", "NEGLIGIBLE"),
        ("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE"),
        ("HARM_CATEGORY_DANGEROUS_CONTENT", "NEGLIGIBLE"),
    ];

    private readonly record struct Part(string? Text, bool Thought, string? Signature, PlannedToolCall? Call);
}
