using System.Buffers;
using System.Text.Json;
using ModelGateway.Wire;

namespace ModelGateway.Canonical;

/// <summary>
/// The shared half of every decoder whose upstream speaks Server-Sent Events: it pulls SSE events
/// from the buffered body and lets the provider's decoder turn each into zero or more canonical
/// events. Decoded text lives in a scratch buffer reused per SSE event, so a text delta costs a copy,
/// not an allocation.
/// </summary>
internal abstract class SseStreamDecoder : IStreamDecoder
{
    private readonly SseReader _events;
    private readonly ArrayBufferWriter<byte> _scratch = new(512);
    private StreamEvent[] _pending = new StreamEvent[4];
    private int _head;
    private int _count;

    protected SseStreamDecoder(Stream body, int maxEventBytes)
    {
        _events = new SseReader(body, maxEventBytes);
    }

    public bool IsComplete { get; protected set; }

    public bool TryRead(out StreamEvent streamEvent)
    {
        while (true)
        {
            if (_head < _count)
            {
                streamEvent = _pending[_head++];
                return true;
            }

            if (IsComplete || !_events.TryReadEvent())
            {
                streamEvent = default;
                return false;
            }

            // The previous SSE event's canonical events have all been read, so their text may be overwritten.
            _head = 0;
            _count = 0;
            _scratch.ResetWrittenCount();
            try
            {
                Decode(_events.EventName, _events.Data);
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException("The upstream sent an event that is not valid JSON.", ex);
            }
        }
    }

    public ValueTask<bool> FillAsync(CancellationToken cancellationToken) => _events.FillAsync(cancellationToken);

    /// <summary>Turns one SSE event (its <c>event:</c> name, possibly empty, and its data) into canonical events.</summary>
    protected abstract void Decode(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data);

    protected void Emit(in StreamEvent streamEvent)
    {
        if (_count == _pending.Length)
        {
            Array.Resize(ref _pending, _pending.Length * 2);
        }

        _pending[_count++] = streamEvent;
    }

    /// <summary>Copies the string the reader is on, unescaped, into the scratch buffer.</summary>
    protected ReadOnlyMemory<byte> Text(ref Utf8JsonReader reader)
    {
        // The escaped length bounds the unescaped one.
        var span = _scratch.GetSpan(reader.ValueSpan.Length);
        var written = reader.CopyString(span);
        var memory = _scratch.WrittenMemory.Length;
        _scratch.Advance(written);
        return _scratch.WrittenMemory[memory..];
    }

    /// <summary>Copies raw JSON (a tool call's input object) into the scratch buffer.</summary>
    protected ReadOnlyMemory<byte> Raw(ReadOnlySpan<byte> json)
    {
        var start = _scratch.WrittenCount;
        _scratch.Write(json);
        return _scratch.WrittenMemory[start..];
    }

    public virtual void Dispose() => _events.Dispose();
}
