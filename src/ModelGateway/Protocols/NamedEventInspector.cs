using System.Buffers;
using ModelGateway.Canonical;

namespace ModelGateway.Protocols;

/// <summary>What one event of a named-event stream (Anthropic Messages, Responses) says, for the relay.</summary>
internal struct NamedEventFacts
{
    /// <summary>The upstream reported an error: the stream is broken.</summary>
    public bool IsError;

    /// <summary>The wire's last event (<c>message_stop</c>, <c>response.completed</c>): the answer is complete.</summary>
    public bool IsTerminal;

    public bool HasUsage;

    /// <summary>Cumulative usage so far, when <see cref="HasUsage"/>.</summary>
    public TokenUsage Usage;

    public FinishReason Finish;

    public bool StartsToolCall;

    /// <summary>Bytes of answer text (and tool arguments) in the event, for estimates when no usage comes.</summary>
    public long OutputBytes;
}

/// <summary>
/// Reads the events of a protocol whose streams name every event (<c>event: x</c> then <c>data:</c>),
/// so the relay can pass them through byte for byte while learning usage, the finish and errors.
/// </summary>
internal abstract class NamedEventInspector
{
    /// <summary>False when the event is not valid for the wire (the stream is then broken).</summary>
    public abstract bool TryInspect(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, out NamedEventFacts facts);

    /// <summary>Writes the terminal event(s) an upstream left out after a finished answer.</summary>
    public abstract void WriteMissingEnd(IBufferWriter<byte> output, in TokenUsage usage, FinishReason finish);
}
