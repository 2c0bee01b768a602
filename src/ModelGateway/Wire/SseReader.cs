using System.Buffers;

namespace ModelGateway.Wire;

/// <summary>
/// Reads Server-Sent Events from an upstream body. Each event's <c>data</c> is handed over as a
/// slice of a pooled buffer (no copy for the usual one-line event), valid until the next read.
/// Reading from the buffer and filling it are separate so the relay can flush once per network
/// read, forwarding chunk by chunk without ever holding one back.
/// </summary>
internal sealed class SseReader : IDisposable
{
    // Events are a few hundred bytes and the buffer grows on demand: a small start keeps thousands of
    // slow concurrent streams cheap (each holds its buffer for the stream's whole life).
    private const int InitialBufferSize = 4 * 1024;

    private static ReadOnlySpan<byte> DoneMarker => "[DONE]"u8;

    private readonly Stream _source;
    private readonly int _maxEventBytes;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private byte[]? _joined;
    private int _dataStart;
    private int _dataLength;
    private bool _dataIsJoined;
    private int _eventStart;
    private int _eventLength;

    public SseReader(Stream source, int maxEventBytes)
    {
        _source = source;
        _maxEventBytes = maxEventBytes;
        _buffer = ArrayPool<byte>.Shared.Rent(InitialBufferSize);
    }

    /// <summary>The current event's data (the <c>data:</c> lines joined by newlines).</summary>
    public ReadOnlySpan<byte> Data => _dataIsJoined ? _joined.AsSpan(0, _dataLength) : _buffer.AsSpan(_dataStart, _dataLength);

    /// <summary>The current event's data as memory, for writes that cross an await.</summary>
    public ReadOnlyMemory<byte> DataMemory => _dataIsJoined ? _joined.AsMemory(0, _dataLength) : _buffer.AsMemory(_dataStart, _dataLength);

    /// <summary>The current event's <c>event:</c> name (Anthropic and Responses streams name every event), or empty.</summary>
    public ReadOnlySpan<byte> EventName => _buffer.AsSpan(_eventStart, _eventLength);

    public bool IsDone => Data.SequenceEqual(DoneMarker);

    /// <summary>True once the source ended; <see cref="EndedMidEvent"/> tells whether it cut an event short.</summary>
    public bool Completed { get; private set; }

    public bool EndedMidEvent { get; private set; }

    /// <summary>Takes the next complete event already in the buffer, without I/O.</summary>
    public bool TryReadEvent()
    {
        var position = _start;
        var hasData = false;
        _dataIsJoined = false;
        _dataLength = 0;
        _eventLength = 0;
        var joinedLength = 0;
        while (true)
        {
            var remaining = _buffer.AsSpan(position, _end - position);
            var newline = remaining.IndexOf((byte)'\n');
            if (newline < 0)
            {
                return false;
            }

            var line = remaining[..newline];
            if (!line.IsEmpty && line[^1] == (byte)'\r')
            {
                line = line[..^1];
            }

            var lineStart = position;
            position += newline + 1;
            if (line.IsEmpty)
            {
                _start = position;
                if (hasData)
                {
                    if (_dataIsJoined)
                    {
                        _dataLength = joinedLength;
                    }

                    return true;
                }

                // A blank line after only comments or unknown fields: nothing to dispatch, and a lone event name is forgotten.
                _eventLength = 0;
                continue;
            }

            if (line[0] == (byte)':')
            {
                continue;
            }

            var colon = line.IndexOf((byte)':');
            var field = colon < 0 ? line : line[..colon];
            var valueOffset = colon < 0 ? line.Length : colon + 1;
            if (valueOffset < line.Length && line[valueOffset] == (byte)' ')
            {
                valueOffset++;
            }

            if (!field.SequenceEqual("data"u8))
            {
                if (field.SequenceEqual("event"u8))
                {
                    _eventStart = lineStart + valueOffset;
                    _eventLength = line.Length - valueOffset;
                }

                continue;
            }

            var value = line[valueOffset..];
            if (!hasData)
            {
                hasData = true;
                _dataStart = lineStart + valueOffset;
                _dataLength = value.Length;
            }
            else
            {
                // Multi-line data is rare in practice; join it in a side buffer.
                if (!_dataIsJoined)
                {
                    EnsureJoined(_dataLength + 1 + value.Length);
                    _buffer.AsSpan(_dataStart, _dataLength).CopyTo(_joined);
                    joinedLength = _dataLength;
                    _dataIsJoined = true;
                }

                EnsureJoined(joinedLength + 1 + value.Length);
                _joined![joinedLength++] = (byte)'\n';
                value.CopyTo(_joined.AsSpan(joinedLength));
                joinedLength += value.Length;
            }
        }
    }

    /// <summary>Reads more bytes from the source. False when the source has ended.</summary>
    public async ValueTask<bool> FillAsync(CancellationToken cancellationToken)
    {
        if (Completed)
        {
            return false;
        }

        if (_start > 0)
        {
            var pending = _end - _start;
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, pending);
            _start = 0;
            _end = pending;
        }

        if (_end == _buffer.Length)
        {
            if (_buffer.Length >= _maxEventBytes)
            {
                throw new InvalidDataException($"An upstream event is larger than {_maxEventBytes} bytes.");
            }

            var larger = ArrayPool<byte>.Shared.Rent(Math.Min(_maxEventBytes, _buffer.Length * 2));
            Buffer.BlockCopy(_buffer, 0, larger, 0, _end);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        var read = await _source.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
        if (read == 0)
        {
            Completed = true;
            EndedMidEvent = !_buffer.AsSpan(_start, _end - _start).Trim("\r\n \t"u8).IsEmpty;
            return false;
        }

        _end += read;
        return true;
    }

    /// <summary>Reads the next event, filling the buffer as needed. False at the end of the source.</summary>
    public async ValueTask<bool> ReadEventAsync(CancellationToken cancellationToken)
    {
        while (!TryReadEvent())
        {
            if (!await FillAsync(cancellationToken).ConfigureAwait(false))
            {
                return false;
            }
        }

        return true;
    }

    private void EnsureJoined(int size)
    {
        if (_joined is null || _joined.Length < size)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(size, 4096));
            if (_joined is not null)
            {
                _joined.AsSpan().CopyTo(larger);
                ArrayPool<byte>.Shared.Return(_joined);
            }

            _joined = larger;
        }
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        if (_joined is not null)
        {
            ArrayPool<byte>.Shared.Return(_joined);
            _joined = null;
        }
    }
}
