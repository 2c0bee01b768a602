using System.Buffers;
using System.Buffers.Text;
using System.Text;
using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>
/// The per-response values inside otherwise fixed JSON: id, created, prompt and total tokens.
/// Formatters write them through this class so that the same formatting code can either
/// write real values (<see cref="ResponseValues"/>) or record a reusable template (<see cref="TemplateRecorder"/>).
/// </summary>
internal abstract class ResponseFields
{
    public abstract void WriteId(Utf8JsonWriter writer);

    public abstract void WriteCreated(Utf8JsonWriter writer);

    public abstract void WritePromptTokens(Utf8JsonWriter writer);

    public abstract void WriteTotalTokens(Utf8JsonWriter writer);
}

/// <summary>The real values of one response.</summary>
internal sealed class ResponseValues : ResponseFields
{
    public ResponseValues(string id, long created, int promptTokens, int completionTokens)
    {
        Id = id;
        Created = created;
        PromptTokens = promptTokens;
        CompletionTokens = completionTokens;
    }

    public string Id { get; }

    public long Created { get; }

    public int PromptTokens { get; }

    public int CompletionTokens { get; }

    public long TotalTokens => (long)PromptTokens + CompletionTokens;

    public override void WriteId(Utf8JsonWriter writer) => writer.WriteStringValue(Id);

    public override void WriteCreated(Utf8JsonWriter writer) => writer.WriteNumberValue(Created);

    public override void WritePromptTokens(Utf8JsonWriter writer) => writer.WriteNumberValue(PromptTokens);

    public override void WriteTotalTokens(Utf8JsonWriter writer) => writer.WriteNumberValue(TotalTokens);
}

internal enum HoleKind
{
    Id,
    Created,
    PromptTokens,
    TotalTokens,
}

/// <summary>Where a template's per-response value goes: at Offset, replacing Length placeholder bytes.</summary>
internal readonly record struct TemplateHole(int Offset, int Length, HoleKind Kind);

/// <summary>Precomputed JSON bytes with holes for the per-response values.</summary>
internal sealed class ResponseTemplate
{
    private readonly byte[] _bytes;
    private readonly TemplateHole[] _holes;

    public ResponseTemplate(byte[] bytes, TemplateHole[] holes)
    {
        _bytes = bytes;
        _holes = holes;
    }

    public void Render(IBufferWriter<byte> output, ResponseValues values)
    {
        var position = 0;
        foreach (var hole in _holes)
        {
            output.Write(_bytes.AsSpan(position, hole.Offset - position));
            WriteValue(output, hole.Kind, values);
            position = hole.Offset + hole.Length;
        }

        output.Write(_bytes.AsSpan(position));
    }

    private static void WriteValue(IBufferWriter<byte> output, HoleKind kind, ResponseValues values)
    {
        var span = output.GetSpan(64);
        int written;
        switch (kind)
        {
            case HoleKind.Id:
                // Ids are ASCII letters, digits, '-' and '_': no JSON escaping needed.
                written = Encoding.UTF8.GetBytes(values.Id, span);
                break;
            case HoleKind.Created:
                Utf8Formatter.TryFormat(values.Created, span, out written);
                break;
            case HoleKind.PromptTokens:
                Utf8Formatter.TryFormat(values.PromptTokens, span, out written);
                break;
            default:
                Utf8Formatter.TryFormat(values.TotalTokens, span, out written);
                break;
        }

        output.Advance(written);
    }
}

/// <summary>Records what a formatter writes as a <see cref="ResponseTemplate"/>, leaving holes for the values.</summary>
internal sealed class TemplateRecorder : ResponseFields
{
    private readonly ArrayBufferWriter<byte> _buffer = new();
    private readonly List<TemplateHole> _holes = [];

    public TemplateRecorder() => Writer = new Utf8JsonWriter(_buffer, JsonFormat.WriterOptions);

    public Utf8JsonWriter Writer { get; }

    public ResponseTemplate Record(Action<Utf8JsonWriter, ResponseFields> write)
    {
        _buffer.ResetWrittenCount();
        _holes.Clear();
        Writer.Reset(_buffer);
        write(Writer, this);
        Writer.Flush();
        return new ResponseTemplate(_buffer.WrittenSpan.ToArray(), [.. _holes]);
    }

    public override void WriteId(Utf8JsonWriter writer)
    {
        writer.WriteStringValue(""u8);
        writer.Flush();
        _holes.Add(new TemplateHole(_buffer.WrittenCount - 1, 0, HoleKind.Id));
    }

    public override void WriteCreated(Utf8JsonWriter writer) => NumberHole(writer, HoleKind.Created);

    public override void WritePromptTokens(Utf8JsonWriter writer) => NumberHole(writer, HoleKind.PromptTokens);

    public override void WriteTotalTokens(Utf8JsonWriter writer) => NumberHole(writer, HoleKind.TotalTokens);

    private void NumberHole(Utf8JsonWriter writer, HoleKind kind)
    {
        writer.WriteNumberValue(0);
        writer.Flush();
        _holes.Add(new TemplateHole(_buffer.WrittenCount - 1, 1, kind));
    }
}
