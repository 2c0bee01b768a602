namespace ModelGateway.Routing.Signals;

/// <summary>
/// Attempts on one deployment still waiting for their first byte, bucketed by start time, so the age of the
/// oldest is known before it finishes. A saturating box shows its slowness as a request still waiting, not
/// only once slow answers complete. Adding and removing an attempt is one interlocked operation; the scan
/// for the oldest runs in the background loop, and the router reads its result as one volatile value.
/// </summary>
internal sealed class PendingFirstBytes
{
    private const int Slots = 256;
    private static readonly TimeSpan Bucket = TimeSpan.FromMilliseconds(100);

    private readonly long _bucketTicks;
    private readonly int[] _counts = new int[Slots];
    private readonly long[] _bucketOf = new long[Slots];
    private int _pending;
    private double _oldestAgeMs;

    public PendingFirstBytes(TimeProvider timeProvider)
    {
        _bucketTicks = Math.Max(1, (long)(Bucket.TotalSeconds * timeProvider.TimestampFrequency));
    }

    /// <summary>Attempts waiting for a first byte now.</summary>
    public int Pending => Volatile.Read(ref _pending);

    /// <summary>Age of the oldest waiting attempt at the last background scan, in ms; 0 when none waits.</summary>
    public double OldestAgeMs => Volatile.Read(ref _oldestAgeMs);

    public void Started(long startedTimestamp)
    {
        var bucket = startedTimestamp / _bucketTicks;
        var slot = (int)(bucket % Slots);
        Volatile.Write(ref _bucketOf[slot], bucket);
        Interlocked.Increment(ref _counts[slot]);
        Interlocked.Increment(ref _pending);
    }

    public void Answered(long startedTimestamp)
    {
        var slot = (int)(startedTimestamp / _bucketTicks % Slots);
        Interlocked.Decrement(ref _counts[slot]);
        Interlocked.Decrement(ref _pending);
    }

    /// <summary>Background loop: finds the oldest waiting attempt (oldest bucket first) and publishes its age.</summary>
    public void Refresh(long nowTimestamp)
    {
        if (Pending <= 0)
        {
            Volatile.Write(ref _oldestAgeMs, 0);
            return;
        }

        var now = nowTimestamp / _bucketTicks;
        for (var age = Slots - 1; age >= 0; age--)
        {
            var bucket = now - age;
            var slot = (int)(((bucket % Slots) + Slots) % Slots);
            if (Volatile.Read(ref _counts[slot]) > 0 && Volatile.Read(ref _bucketOf[slot]) == bucket)
            {
                Volatile.Write(ref _oldestAgeMs, age * Bucket.TotalMilliseconds);
                return;
            }
        }

        Volatile.Write(ref _oldestAgeMs, 0);
    }

    /// <summary>
    /// The latency the router ranks by: the measured estimate, or the age of an attempt still waiting for its
    /// first byte when that is longer (a late sample, counted before it finishes). Unknown stays unknown
    /// unless something already waits longer than that.
    /// </summary>
    public static double WithLate(double latencyMs, PendingFirstBytes pending)
    {
        var late = pending.OldestAgeMs;
        if (late <= 0)
        {
            return latencyMs;
        }

        return double.IsNaN(latencyMs) || late > latencyMs ? late : latencyMs;
    }
}
