using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>Legacy <c>/v1/completions</c> bodies and stream events (<c>"object":"text_completion"</c>).</summary>
internal sealed class TextCompletionFormatter : ResponseFormatter
{
    private readonly int _choices;
    private readonly bool _includeUsage;
    private readonly int _completionTokens;
    private readonly byte[] _model;
    private readonly byte[] _text;
    private readonly byte[][] _pieces;
    private static readonly byte[] EmptyText = JsonText.Encode(string.Empty);

    public TextCompletionFormatter(string model, string text, string[] pieces, int choices, bool includeUsage, int completionTokens)
    {
        _choices = choices;
        _includeUsage = includeUsage;
        _completionTokens = completionTokens;
        _model = JsonText.Encode(model);
        _text = JsonText.Encode(text);
        _pieces = JsonText.Encode(pieces);
    }

    public override int Choices => _choices;

    public override int PieceCount => _pieces.Length;

    public override bool IncludeUsage => _includeUsage;

    public override int CompletionTokens => _completionTokens;

    public override void WriteBody(Utf8JsonWriter writer, ResponseFields fields)
    {
        WriteHeader(writer, fields, "text_completion"u8, _model);
        writer.WriteStartArray("choices"u8);
        for (var choice = 0; choice < _choices; choice++)
        {
            WriteChoice(writer, _text, choice, isFinish: true);
        }

        writer.WriteEndArray();
        writer.WritePropertyName("usage"u8);
        WriteUsage(writer, fields);
        writer.WriteEndObject();
    }

    public override void WritePieceChunk(Utf8JsonWriter writer, ResponseFields fields, int choice, int piece) =>
        WriteChunk(writer, fields, _pieces[piece], choice, isFinish: false);

    public override void WriteFinishChunk(Utf8JsonWriter writer, ResponseFields fields, int choice) =>
        WriteChunk(writer, fields, EmptyText, choice, isFinish: true);

    public override void WriteUsageChunk(Utf8JsonWriter writer, ResponseFields fields)
    {
        WriteHeader(writer, fields, "text_completion"u8, _model);
        writer.WriteStartArray("choices"u8);
        writer.WriteEndArray();
        writer.WritePropertyName("usage"u8);
        WriteUsage(writer, fields);
        writer.WriteEndObject();
    }

    private void WriteChunk(Utf8JsonWriter writer, ResponseFields fields, byte[] text, int choice, bool isFinish)
    {
        WriteHeader(writer, fields, "text_completion"u8, _model);
        writer.WriteStartArray("choices"u8);
        WriteChoice(writer, text, choice, isFinish);
        writer.WriteEndArray();
        if (_includeUsage)
        {
            writer.WriteNull("usage"u8);
        }

        writer.WriteEndObject();
    }

    private static void WriteChoice(Utf8JsonWriter writer, byte[] text, int choice, bool isFinish)
    {
        writer.WriteStartObject();
        JsonText.Write(writer, "text"u8, text);
        writer.WriteNumber("index"u8, choice);
        writer.WriteNull("logprobs"u8);
        if (isFinish)
        {
            writer.WriteString("finish_reason"u8, "stop"u8);
        }
        else
        {
            writer.WriteNull("finish_reason"u8);
        }

        writer.WriteEndObject();
    }

    private void WriteUsage(Utf8JsonWriter writer, ResponseFields fields)
    {
        writer.WriteStartObject();
        writer.WritePropertyName("prompt_tokens"u8);
        fields.WritePromptTokens(writer);
        writer.WriteNumber("completion_tokens"u8, _completionTokens);
        writer.WritePropertyName("total_tokens"u8);
        fields.WriteTotalTokens(writer);
        writer.WriteEndObject();
    }
}
