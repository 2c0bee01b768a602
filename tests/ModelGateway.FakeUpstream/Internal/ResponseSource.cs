using System.Buffers;
using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>Produces the bytes of one response, either by formatting now or by filling a precomputed template.</summary>
internal abstract class ResponseSource
{
    protected ResponseSource(ResponseFormatter formatter) => Formatter = formatter;

    /// <summary>Describes the response's shape (choices, pieces, usage); also what live sources format with.</summary>
    public ResponseFormatter Formatter { get; }

    public abstract void WriteBody(IBufferWriter<byte> output);

    public abstract void WriteStartChunk(IBufferWriter<byte> output, int choice);

    public abstract void WritePieceChunk(IBufferWriter<byte> output, int choice, int piece);

    public abstract void WriteFinishChunk(IBufferWriter<byte> output, int choice);

    public abstract void WriteUsageChunk(IBufferWriter<byte> output);
}

/// <summary>Formats every event as it is written.</summary>
internal sealed class LiveResponseSource : ResponseSource
{
    private readonly ResponseValues _values;
    private Utf8JsonWriter? _writer;

    public LiveResponseSource(ResponseFormatter formatter, ResponseValues values)
        : base(formatter) => _values = values;

    public override void WriteBody(IBufferWriter<byte> output) =>
        Write(output, static (f, w, v, _, _) => f.WriteBody(w, v), 0, 0);

    public override void WriteStartChunk(IBufferWriter<byte> output, int choice) =>
        Write(output, static (f, w, v, c, _) => f.WriteStartChunk(w, v, c), choice, 0);

    public override void WritePieceChunk(IBufferWriter<byte> output, int choice, int piece) =>
        Write(output, static (f, w, v, c, p) => f.WritePieceChunk(w, v, c, p), choice, piece);

    public override void WriteFinishChunk(IBufferWriter<byte> output, int choice) =>
        Write(output, static (f, w, v, c, _) => f.WriteFinishChunk(w, v, c), choice, 0);

    public override void WriteUsageChunk(IBufferWriter<byte> output) =>
        Write(output, static (f, w, v, _, _) => f.WriteUsageChunk(w, v), 0, 0);

    private void Write(
        IBufferWriter<byte> output,
        Action<ResponseFormatter, Utf8JsonWriter, ResponseValues, int, int> write,
        int choice,
        int piece)
    {
        if (_writer is null)
        {
            _writer = new Utf8JsonWriter(output, JsonFormat.WriterOptions);
        }
        else
        {
            _writer.Reset(output);
        }

        write(Formatter, _writer, _values, choice, piece);
        _writer.Flush();
    }
}

/// <summary>Precomputed templates of every event of a single-choice response.</summary>
internal sealed class ResponseTemplates
{
    private ResponseTemplates(ResponseFormatter formatter) => Formatter = formatter;

    public ResponseFormatter Formatter { get; }

    public ResponseTemplate? Body { get; private init; }

    public ResponseTemplate? Start { get; private init; }

    public ResponseTemplate[] Pieces { get; private init; } = [];

    public ResponseTemplate? Finish { get; private init; }

    public ResponseTemplate? Usage { get; private init; }

    public static ResponseTemplates Build(ResponseFormatter formatter, bool stream)
    {
        var recorder = new TemplateRecorder();
        if (!stream)
        {
            return new ResponseTemplates(formatter) { Body = recorder.Record(formatter.WriteBody) };
        }

        var pieces = new ResponseTemplate[formatter.PieceCount];
        for (var i = 0; i < pieces.Length; i++)
        {
            pieces[i] = recorder.Record((w, f) => formatter.WritePieceChunk(w, f, 0, i));
        }

        return new ResponseTemplates(formatter)
        {
            Start = formatter.HasStartChunk ? recorder.Record((w, f) => formatter.WriteStartChunk(w, f, 0)) : null,
            Pieces = pieces,
            Finish = recorder.Record((w, f) => formatter.WriteFinishChunk(w, f, 0)),
            Usage = formatter.IncludeUsage ? recorder.Record(formatter.WriteUsageChunk) : null,
        };
    }
}

/// <summary>Fills precomputed templates with this response's id, timestamp and token counts.</summary>
internal sealed class TemplateResponseSource : ResponseSource
{
    private readonly ResponseTemplates _templates;
    private readonly ResponseValues _values;

    public TemplateResponseSource(ResponseTemplates templates, ResponseValues values)
        : base(templates.Formatter)
    {
        _templates = templates;
        _values = values;
    }

    public override void WriteBody(IBufferWriter<byte> output) => Render(_templates.Body, output);

    public override void WriteStartChunk(IBufferWriter<byte> output, int choice) => Render(_templates.Start, output);

    public override void WritePieceChunk(IBufferWriter<byte> output, int choice, int piece) =>
        _templates.Pieces[piece].Render(output, _values);

    public override void WriteFinishChunk(IBufferWriter<byte> output, int choice) => Render(_templates.Finish, output);

    public override void WriteUsageChunk(IBufferWriter<byte> output) => Render(_templates.Usage, output);

    private void Render(ResponseTemplate? template, IBufferWriter<byte> output) =>
        (template ?? throw new InvalidOperationException("No template was recorded for this event.")).Render(output, _values);
}
