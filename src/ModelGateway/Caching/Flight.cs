using ModelGateway.Configuration;
using ModelGateway.Providers;

namespace ModelGateway.Caching;

/// <summary>
/// One upstream call that identical requests arriving while it runs share, in this process. A streamed
/// leader's client bytes are appended here as the relay writes them (the copy the cache stores anyway);
/// followers read them from the start at their own pace, decode them with the leader's wire decoder and
/// re-encode each event in their own client format, so they follow the answer live. Single writer (the
/// leader's relay), any number of readers, no lock on the write path: the buffer only grows, a grown
/// buffer holds every byte the old one did, and the count is published after the bytes.
/// </summary>
internal sealed class Flight
{
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[] _bytes = [];
    private int _count;
    private int _limit = int.MaxValue;
    private TaskCompletionSource? _waiter;
    private int _followers;
    private bool _closed;
    private bool _stopped;
    private int _end; // 0 running, 1 ended well, 2 broken
    private CancellationTokenSource? _upstream;
    private bool _leaderGone;

    /// <summary>The answer (null when there is none to share): what non-streamed followers wait for, and what a hit saved.</summary>
    public TaskCompletionSource<CachedAnswer?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the leader's stream starts (or the flight ends without one).</summary>
    public Task Started => _started.Task;

    /// <summary>The deployment whose answer is streaming; set before <see cref="Started"/> completes.</summary>
    public Deployment? Deployment { get; private set; }

    /// <summary>The leader's client wire: the format of the bytes here.</summary>
    public WireFormat Wire { get; private set; }

    /// <summary>True once the stream has started.</summary>
    public bool Streaming => Deployment is not null;

    /// <summary>True when the copy grew past the entry limit: the answer is shared but not stored.</summary>
    public bool Overflowed { get; private set; }

    /// <summary>True when copying stopped (past the limit with nobody following): the copy is incomplete.</summary>
    public bool Incomplete => Volatile.Read(ref _stopped);

    /// <summary>0 while running, 1 when the leader's stream ended complete, 2 when it broke.</summary>
    public int End => Volatile.Read(ref _end);

    /// <summary>The bytes copied so far (a snapshot).</summary>
    public ReadOnlyMemory<byte> Captured => Volatile.Read(ref _bytes).AsMemory(0, Volatile.Read(ref _count));

    /// <summary>The leader's stream starts: followers can read from now on.</summary>
    public void BeginStream(Deployment deployment, WireFormat wire, int limit)
    {
        Wire = wire;
        _limit = limit;
        Deployment = deployment;
        _started.TrySetResult();
    }

    /// <summary>The leader's call: cancelled when the leader's client leaves and nobody follows.</summary>
    public Flight Lead(CancellationTokenSource upstream)
    {
        _upstream = upstream;
        return this;
    }

    /// <summary>Called by the leader's relay for every write. No lock, no allocation unless the buffer grows.</summary>
    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (_stopped || bytes.IsEmpty)
        {
            return;
        }

        var count = _count;
        var needed = count + bytes.Length;
        if (needed > _limit)
        {
            Overflowed = true;
            if (Volatile.Read(ref _followers) == 0 && TryStop())
            {
                return;
            }
        }

        var buffer = _bytes;
        if (needed > buffer.Length)
        {
            var grown = new byte[Math.Max(needed, Math.Max(4096, buffer.Length * 2))];
            buffer.AsSpan(0, count).CopyTo(grown);
            Volatile.Write(ref _bytes, grown);
            buffer = grown;
        }

        bytes.CopyTo(buffer.AsSpan(count));
        Volatile.Write(ref _count, needed);
    }

    // Past the limit with nobody following, the copy stops (nothing will be stored) and the flight takes no followers.
    private bool TryStop()
    {
        lock (_gate)
        {
            if (_followers != 0)
            {
                return false;
            }

            _closed = true;
            Volatile.Write(ref _stopped, true);
            return true;
        }
    }

    /// <summary>Wakes followers waiting for bytes; called when the leader flushes. One fenced exchange when nobody waits.</summary>
    public void Pulse()
    {
        // The full fence orders the count written before against the read of the waiter (a follower registers, then rechecks).
        Interlocked.Exchange(ref _waiter, null)?.TrySetResult();
    }

    /// <summary>The leader's stream is over: well (complete) or not. The first call wins.</summary>
    public void Finish(bool complete)
    {
        Interlocked.CompareExchange(ref _end, complete ? 1 : 2, 0);
        _started.TrySetResult();
        Pulse();
    }

    /// <summary>Joins as a follower; false when the flight takes no more (its copy stopped).</summary>
    public bool TryJoin()
    {
        lock (_gate)
        {
            if (_closed)
            {
                return false;
            }

            _followers++;
            return true;
        }
    }

    /// <summary>A follower is done; the last one out ends a call whose own client already left.</summary>
    public void Leave()
    {
        CancellationTokenSource? cancel = null;
        lock (_gate)
        {
            if (--_followers == 0 && _leaderGone)
            {
                cancel = _upstream;
            }
        }

        Cancel(cancel);
    }

    /// <summary>
    /// The leader's client went away. With followers the upstream call goes on for them (the relay's writes
    /// to the gone client are dropped by the server); without, it is cancelled as any abandoned request.
    /// </summary>
    public void LeaderGone()
    {
        CancellationTokenSource? cancel;
        lock (_gate)
        {
            _leaderGone = true;
            cancel = _followers == 0 ? _upstream : null;
            if (cancel is not null)
            {
                _closed = true;
            }
        }

        Cancel(cancel);
    }

    private static void Cancel(CancellationTokenSource? source)
    {
        try
        {
            source?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The call had already ended.
        }
    }

    /// <summary>Reads the bytes at <paramref name="offset"/>, waiting for more; 0 once the stream is over and all was read.</summary>
    public async ValueTask<int> ReadAsync(int offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        while (true)
        {
            var count = Volatile.Read(ref _count);
            if (offset < count)
            {
                var length = Math.Min(destination.Length, count - offset);
                Volatile.Read(ref _bytes).AsSpan(offset, length).CopyTo(destination.Span);
                return length;
            }

            if (Volatile.Read(ref _end) != 0)
            {
                // The end is published after the last append: one more look at the count.
                if (offset < Volatile.Read(ref _count))
                {
                    continue;
                }

                return 0;
            }

            var waiter = Volatile.Read(ref _waiter);
            if (waiter is null)
            {
                var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                waiter = Interlocked.CompareExchange(ref _waiter, mine, null) ?? mine;
            }

            // Registered before this second look, so an append after it is followed by a pulse that wakes us.
            if (offset < Volatile.Read(ref _count) || Volatile.Read(ref _end) != 0)
            {
                continue;
            }

            await waiter.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A follower's view of the bytes, from the start, as a stream for the leader's wire decoder.</summary>
    public Stream OpenReader() => new Reader(this);

    private sealed class Reader(Flight flight) : Stream
    {
        private int _offset;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _offset; set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await flight.ReadAsync(_offset, buffer, cancellationToken).ConfigureAwait(false);
            _offset += read;
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
