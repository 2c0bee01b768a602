namespace ModelGateway.State;

/// <summary>
/// A count over the last 60 seconds, kept in one-second buckets: exact to the second, so a limit of
/// N per minute admits N in any 60-second window and no more. Not thread-safe; callers lock.
/// </summary>
internal sealed class SlidingWindow
{
    public const int Seconds = 60;

    private readonly long[] _second = new long[Seconds];
    private readonly long[] _count = new long[Seconds];

    public long Sum(long now)
    {
        long sum = 0;
        for (var i = 0; i < Seconds; i++)
        {
            if (now - _second[i] < Seconds)
            {
                sum += _count[i];
            }
        }

        return sum;
    }

    public void Add(long now, long amount)
    {
        var i = (int)(now % Seconds);
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
        var i = (int)(second % Seconds);
        if (_second[i] == second && now - second < Seconds)
        {
            _count[i] = Math.Max(0, _count[i] + delta);
        }
    }

    /// <summary>Seconds until the oldest counted bucket leaves the window: when capacity next frees up.</summary>
    public TimeSpan UntilOldestExpires(long now)
    {
        var oldest = long.MaxValue;
        for (var i = 0; i < Seconds; i++)
        {
            if (_count[i] > 0 && now - _second[i] < Seconds && _second[i] < oldest)
            {
                oldest = _second[i];
            }
        }

        return oldest == long.MaxValue ? TimeSpan.Zero : TimeSpan.FromSeconds(oldest + Seconds - now);
    }
}
