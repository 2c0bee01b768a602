using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

internal enum ReplyKind
{
    Text,
    Refusal,
    ToolCall,
}

/// <summary>Chat Completions bodies and <c>chat.completion.chunk</c> events, field for field in OpenAI's order.</summary>
internal sealed class ChatFormatter : ResponseFormatter
{
    private readonly int _choices;
    private readonly bool _includeUsage;
    private readonly int _completionTokens;

    // Pre-encoded JSON literals: encoded once, written raw for every event.
    private readonly byte[] _model;
    private readonly byte[] _text;
    private readonly byte[][] _pieces;

    public ChatFormatter(
        string model,
        ReplyKind kind,
        string text,
        string[] pieces,
        int choices,
        bool includeUsage,
        int completionTokens,
        int cachedTokens,
        string? toolCallId = null,
        string? toolName = null)
    {
        Kind = kind;
        _choices = choices;
        _includeUsage = includeUsage;
        _completionTokens = completionTokens;
        CachedTokens = cachedTokens;
        ToolCallId = toolCallId;
        ToolName = toolName;
        _model = JsonText.Encode(model);
        _text = JsonText.Encode(text);
        _pieces = JsonText.Encode(pieces);
    }

    public ReplyKind Kind { get; }

    public int CachedTokens { get; }

    public string? ToolCallId { get; }

    public string? ToolName { get; }

    public override int Choices => _choices;

    public override bool HasStartChunk => true;

    public override int PieceCount => _pieces.Length;

    public override bool IncludeUsage => _includeUsage;

    public override int CompletionTokens => _completionTokens;

    private ReadOnlySpan<byte> FinishReason => Kind == ReplyKind.ToolCall ? "tool_calls"u8 : "stop"u8;

    public override void WriteBody(Utf8JsonWriter writer, ResponseFields fields)
    {
        WriteHeader(writer, fields, "chat.completion"u8, _model);
        writer.WriteStartArray("choices"u8);
        for (var choice = 0; choice < _choices; choice++)
        {
            writer.WriteStartObject();
            writer.WriteNumber("index"u8, choice);
            writer.WriteStartObject("message"u8);
            writer.WriteString("role"u8, "assistant"u8);
            switch (Kind)
            {
                case ReplyKind.Text:
                    JsonText.Write(writer, "content"u8, _text);
                    writer.WriteNull("refusal"u8);
                    break;
                case ReplyKind.Refusal:
                    writer.WriteNull("content"u8);
                    JsonText.Write(writer, "refusal"u8, _text);
                    break;
                default:
                    writer.WriteNull("content"u8);
                    writer.WriteStartArray("tool_calls"u8);
                    writer.WriteStartObject();
                    writer.WriteString("id"u8, ToolCallId);
                    writer.WriteString("type"u8, "function"u8);
                    writer.WriteStartObject("function"u8);
                    writer.WriteString("name"u8, ToolName);
                    JsonText.Write(writer, "arguments"u8, _text);
                    writer.WriteEndObject();
                    writer.WriteEndObject();
                    writer.WriteEndArray();
                    writer.WriteNull("refusal"u8);
                    break;
            }

            writer.WriteStartArray("annotations"u8);
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteNull("logprobs"u8);
            writer.WriteString("finish_reason"u8, FinishReason);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WritePropertyName("usage"u8);
        WriteUsage(writer, fields);
        WriteTrailer(writer);
        writer.WriteEndObject();
    }

    public override void WriteStartChunk(Utf8JsonWriter writer, ResponseFields fields, int choice)
    {
        WriteChunkStart(writer, fields, choice);
        writer.WriteString("role"u8, "assistant"u8);
        switch (Kind)
        {
            case ReplyKind.Text:
                writer.WriteString("content"u8, ""u8);
                writer.WriteNull("refusal"u8);
                break;
            case ReplyKind.Refusal:
                writer.WriteNull("content"u8);
                writer.WriteString("refusal"u8, ""u8);
                break;
            default:
                writer.WriteNull("content"u8);
                writer.WriteStartArray("tool_calls"u8);
                writer.WriteStartObject();
                writer.WriteNumber("index"u8, 0);
                writer.WriteString("id"u8, ToolCallId);
                writer.WriteString("type"u8, "function"u8);
                writer.WriteStartObject("function"u8);
                writer.WriteString("name"u8, ToolName);
                writer.WriteString("arguments"u8, ""u8);
                writer.WriteEndObject();
                writer.WriteEndObject();
                writer.WriteEndArray();
                writer.WriteNull("refusal"u8);
                break;
        }

        WriteChunkEnd(writer, finishReason: default, isFinish: false);
    }

    public override void WritePieceChunk(Utf8JsonWriter writer, ResponseFields fields, int choice, int piece)
    {
        WriteChunkStart(writer, fields, choice);
        switch (Kind)
        {
            case ReplyKind.Text:
                JsonText.Write(writer, "content"u8, _pieces[piece]);
                break;
            case ReplyKind.Refusal:
                JsonText.Write(writer, "refusal"u8, _pieces[piece]);
                break;
            default:
                writer.WriteStartArray("tool_calls"u8);
                writer.WriteStartObject();
                writer.WriteNumber("index"u8, 0);
                writer.WriteStartObject("function"u8);
                JsonText.Write(writer, "arguments"u8, _pieces[piece]);
                writer.WriteEndObject();
                writer.WriteEndObject();
                writer.WriteEndArray();
                break;
        }

        WriteChunkEnd(writer, finishReason: default, isFinish: false);
    }

    public override void WriteFinishChunk(Utf8JsonWriter writer, ResponseFields fields, int choice)
    {
        WriteChunkStart(writer, fields, choice);
        WriteChunkEnd(writer, FinishReason, isFinish: true);
    }

    public override void WriteUsageChunk(Utf8JsonWriter writer, ResponseFields fields)
    {
        WriteChunkHeader(writer, fields);
        writer.WriteStartArray("choices"u8);
        writer.WriteEndArray();
        writer.WritePropertyName("usage"u8);
        WriteUsage(writer, fields);
        writer.WriteEndObject();
    }

    private void WriteChunkHeader(Utf8JsonWriter writer, ResponseFields fields)
    {
        WriteHeader(writer, fields, "chat.completion.chunk"u8, _model);
        WriteTrailer(writer);
    }

    /// <summary>Writes everything up to and including <c>"delta":{</c>.</summary>
    private void WriteChunkStart(Utf8JsonWriter writer, ResponseFields fields, int choice)
    {
        WriteChunkHeader(writer, fields);
        writer.WriteStartArray("choices"u8);
        writer.WriteStartObject();
        writer.WriteNumber("index"u8, choice);
        writer.WriteStartObject("delta"u8);
    }

    private void WriteChunkEnd(Utf8JsonWriter writer, ReadOnlySpan<byte> finishReason, bool isFinish)
    {
        writer.WriteEndObject(); // delta
        writer.WriteNull("logprobs"u8);
        if (isFinish)
        {
            writer.WriteString("finish_reason"u8, finishReason);
        }
        else
        {
            writer.WriteNull("finish_reason"u8);
        }

        writer.WriteEndObject(); // choice
        writer.WriteEndArray();
        if (_includeUsage)
        {
            writer.WriteNull("usage"u8);
        }

        writer.WriteEndObject();
    }

    private static void WriteTrailer(Utf8JsonWriter writer)
    {
        writer.WriteString("service_tier"u8, "default"u8);
        writer.WriteString("system_fingerprint"u8, "fp_fake0001"u8);
    }

    private void WriteUsage(Utf8JsonWriter writer, ResponseFields fields)
    {
        writer.WriteStartObject();
        writer.WritePropertyName("prompt_tokens"u8);
        fields.WritePromptTokens(writer);
        writer.WriteNumber("completion_tokens"u8, _completionTokens);
        writer.WritePropertyName("total_tokens"u8);
        fields.WriteTotalTokens(writer);
        writer.WriteStartObject("prompt_tokens_details"u8);
        writer.WriteNumber("cached_tokens"u8, CachedTokens);
        writer.WriteNumber("audio_tokens"u8, 0);
        writer.WriteEndObject();
        writer.WriteStartObject("completion_tokens_details"u8);
        writer.WriteNumber("reasoning_tokens"u8, 0);
        writer.WriteNumber("audio_tokens"u8, 0);
        writer.WriteNumber("accepted_prediction_tokens"u8, 0);
        writer.WriteNumber("rejected_prediction_tokens"u8, 0);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }
}
