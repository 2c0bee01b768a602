using System.Text;
using ModelGateway.Wire;

namespace ModelGateway.Tests.Wire;

/// <summary>Server-sent events are read event by event, however the bytes are split on the wire.</summary>
public sealed class SseReaderTests
{
    private static async Task<List<string>> ReadAllAsync(params string[] writes)
    {
        using var reader = new SseReader(new ChunkedStream(writes), 1024 * 1024);
        var events = new List<string>();
        while (await reader.ReadEventAsync(CancellationToken.None))
        {
            events.Add(Encoding.UTF8.GetString(reader.Data));
        }

        return events;
    }

    [Fact]
    public async Task Events_split_across_reads_are_joined()
    {
        var events = await ReadAllAsync("data: {\"a\"", ":1}\n", "\ndata: [DO", "NE]\n\n");

        Assert.Equal(["{\"a\":1}", "[DONE]"], events);
    }

    [Fact]
    public async Task Comments_and_other_fields_are_skipped_and_crlf_is_accepted()
    {
        var events = await ReadAllAsync(": keep-alive\n\n", "event: message\r\nid: 7\r\ndata: one\r\n\r\n", "retry: 10\n\n", "data:two\n\n");

        Assert.Equal(["one", "two"], events);
    }

    [Fact]
    public async Task Multi_line_data_is_joined_with_newlines()
    {
        var events = await ReadAllAsync("data: line one\ndata: line two\n\n");

        Assert.Equal(["line one\nline two"], events);
    }

    [Fact]
    public async Task A_cut_final_event_is_reported_and_not_dispatched()
    {
        using var reader = new SseReader(new ChunkedStream("data: whole\n\ndata: {\"cut"), 1024);

        Assert.True(await reader.ReadEventAsync(CancellationToken.None));
        Assert.False(await reader.ReadEventAsync(CancellationToken.None));
        Assert.True(reader.EndedMidEvent);
    }

    [Fact]
    public async Task Events_larger_than_the_limit_are_refused()
    {
        using var reader = new SseReader(new ChunkedStream("data: " + new string('x', 200_000)), 64 * 1024);

        await Assert.ThrowsAsync<InvalidDataException>(() => reader.ReadEventAsync(CancellationToken.None).AsTask());
    }

    /// <summary>Hands out each write as a separate read, the way bytes arrive from a socket.</summary>
    private sealed class ChunkedStream(params string[] writes) : Stream
    {
        private readonly Queue<byte[]> _chunks = new(writes.Select(Encoding.UTF8.GetBytes));
        private byte[]? _current;
        private int _offset;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_current is null || _offset == _current.Length)
            {
                if (!_chunks.TryDequeue(out _current))
                {
                    return 0;
                }

                _offset = 0;
            }

            var take = Math.Min(count, _current.Length - _offset);
            Array.Copy(_current, _offset, buffer, offset, take);
            _offset += take;
            return take;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
