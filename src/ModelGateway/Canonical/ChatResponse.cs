using System.Buffers;
using System.Text;

namespace ModelGateway.Canonical;

/// <summary>A tool call in a whole answer.</summary>
internal sealed record ToolCallResult(string Id, string Name, string ArgumentsJson);

/// <summary>
/// A whole answer in no provider's wire: what a non-streamed translated response is parsed into and
/// what each client protocol writes as its non-streamed body. It can replay itself as stream events,
/// so one answer can be served in any client format.
/// </summary>
internal sealed class ChatResponse
{
    public string? Id { get; init; }

    public string? Model { get; init; }

    public string Text { get; init; } = string.Empty;

    public string? Reasoning { get; init; }

    public string? ReasoningSignature { get; init; }

    public IReadOnlyList<ToolCallResult> ToolCalls { get; init; } = [];

    public FinishReason Finish { get; init; }

    public TokenUsage Usage { get; init; }

    /// <summary>The answer as the canonical events a stream of it would carry, in order.</summary>
    public IEnumerable<StreamEvent> ToEvents()
    {
        yield return StreamEvent.Started(Id, Model);
        if (Reasoning is { Length: > 0 } reasoning)
        {
            yield return StreamEvent.Reasoning(Encoding.UTF8.GetBytes(reasoning));
            if (ReasoningSignature is { Length: > 0 } signature)
            {
                yield return StreamEvent.Signature(Encoding.UTF8.GetBytes(signature));
            }
        }

        if (Text.Length > 0)
        {
            yield return StreamEvent.Text(Encoding.UTF8.GetBytes(Text));
        }

        for (var i = 0; i < ToolCalls.Count; i++)
        {
            yield return StreamEvent.ToolCall(i, ToolCalls[i].Id, ToolCalls[i].Name);
            yield return StreamEvent.ToolArguments(i, Encoding.UTF8.GetBytes(ToolCalls[i].ArgumentsJson));
        }

        yield return StreamEvent.Finished(Finish);
        yield return StreamEvent.Counted(Usage);
    }
}

/// <summary>Accumulates canonical events into a <see cref="ChatResponse"/>.</summary>
internal sealed class ChatResponseBuilder
{
    private readonly ArrayBufferWriter<byte> _text = new(256);
    private readonly List<(string Id, string Name, ArrayBufferWriter<byte> Arguments)> _toolCalls = [];
    private ArrayBufferWriter<byte>? _reasoning;
    private ArrayBufferWriter<byte>? _signature;
    private string? _id;
    private string? _model;
    private FinishReason _finish;
    private TokenUsage _usage;

    public bool Finished => _finish != FinishReason.None;

    public bool HasUsage => _usage.Reported;

    public void Add(in StreamEvent e)
    {
        switch (e.Kind)
        {
            case StreamEventKind.Started:
                _id ??= e.Id;
                _model ??= e.Name;
                break;
            case StreamEventKind.TextDelta:
                _text.Write(e.Utf8.Span);
                break;
            case StreamEventKind.ReasoningDelta:
                (_reasoning ??= new ArrayBufferWriter<byte>(256)).Write(e.Utf8.Span);
                break;
            case StreamEventKind.ReasoningSignature:
                (_signature ??= new ArrayBufferWriter<byte>(128)).Write(e.Utf8.Span);
                break;
            case StreamEventKind.ToolCallStart:
                while (_toolCalls.Count <= e.Index)
                {
                    _toolCalls.Add((string.Empty, string.Empty, new ArrayBufferWriter<byte>(64)));
                }

                _toolCalls[e.Index] = (e.Id ?? string.Empty, e.Name ?? string.Empty, _toolCalls[e.Index].Arguments);
                break;
            case StreamEventKind.ToolCallDelta when e.Index < _toolCalls.Count:
                _toolCalls[e.Index].Arguments.Write(e.Utf8.Span);
                break;
            case StreamEventKind.Finish:
                _finish = e.Finish;
                break;
            case StreamEventKind.Usage:
                _usage = e.Usage;
                break;
        }
    }

    public ChatResponse Build()
    {
        var calls = new ToolCallResult[_toolCalls.Count];
        for (var i = 0; i < calls.Length; i++)
        {
            var (id, name, arguments) = _toolCalls[i];
            calls[i] = new ToolCallResult(id, name, arguments.WrittenCount == 0 ? "{}" : Encoding.UTF8.GetString(arguments.WrittenSpan));
        }

        return new ChatResponse
        {
            Id = _id,
            Model = _model,
            Text = Encoding.UTF8.GetString(_text.WrittenSpan),
            Reasoning = _reasoning is null ? null : Encoding.UTF8.GetString(_reasoning.WrittenSpan),
            ReasoningSignature = _signature is null ? null : Encoding.UTF8.GetString(_signature.WrittenSpan),
            ToolCalls = calls,
            Finish = _finish,
            Usage = _usage,
        };
    }
}
