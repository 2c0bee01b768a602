namespace ModelGateway.State;

/// <summary>
/// A count over the last <see cref="Length"/> seconds (60 unless a provider's limit says otherwise), kept in
/// one-second buckets: exact to the second, so a limit of N per window admits N in any window and no more.
/// Not thread-safe; callers lock.
/// </summary>
internal sealed class SlidingWindow(int length = SlidingWindow.Seconds)
{
    /// <summary>The window of keys' limits and of <c>rpm</c>/<c>tpm</c>.</summary>
    public const int Seconds = 60;

    private readonly long[] _second = new long[length];
    private readonly long[] _count = new long[length];

    public int Length => length;

    public long Sum(long now)
    {
        long sum = 0;
        for (var i = 0; i < length; i++)
        {
            if (now - _second[i] < length)
            {
                sum += _count[i];
            }
        }

        return sum;
    }

    public void Add(long now, long amount)
    {
        var i = (int)(now % length);
        if (_second[i] != now)
        {
            _second[i] = now;
            _count[i] = 0;
        }

        _count[i] += amount;
    }

    /// <summary>Corrects the bucket an earlier reservation went into, if it is still in the window.</summary>
    public void Adjust(long second, long now, long delta)
    {
        var i = (int)(second % length);
        if (_second[i] == second && now - second < length)
        {
            _count[i] = Math.Max(0, _count[i] + delta);
        }
    }

    /// <summary>Seconds until the oldest counted bucket leaves the window: when capacity next frees up.</summary>
    public TimeSpan UntilOldestExpires(long now)
    {
        var oldest = long.MaxValue;
        for (var i = 0; i < length; i++)
        {
            if (_count[i] > 0 && now - _second[i] < length && _second[i] < oldest)
            {
                oldest = _second[i];
            }
        }

        return oldest == long.MaxValue ? TimeSpan.Zero : TimeSpan.FromSeconds(oldest + length - now);
    }
}
