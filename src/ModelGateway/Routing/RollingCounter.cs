namespace ModelGateway.Routing;

/// <summary>
/// Counts events over the last minute in one-second buckets, lock-free, for the live ops page:
/// requests per second and error rates per deployment, as this replica sees them.
/// </summary>
internal sealed class RollingCounter(TimeProvider timeProvider)
{
    private const int Seconds = 60;
    private readonly long[] _second = new long[Seconds];
    private readonly long[] _count = new long[Seconds];

    public void Increment()
    {
        var now = timeProvider.GetUtcNow().ToUnixTimeSeconds();
        var i = (int)(now % Seconds);
        var seen = Volatile.Read(ref _second[i]);
        if (seen != now && Interlocked.CompareExchange(ref _second[i], now, seen) == seen)
        {
            Interlocked.Exchange(ref _count[i], 0);
        }

        Interlocked.Increment(ref _count[i]);
    }

    /// <summary>Events in the last <paramref name="window"/> seconds (at most 60), not counting the second in progress.</summary>
    public long Sum(int window)
    {
        var now = timeProvider.GetUtcNow().ToUnixTimeSeconds();
        long sum = 0;
        for (var i = 0; i < Seconds; i++)
        {
            var age = now - Volatile.Read(ref _second[i]);
            if (age >= 1 && age <= window)
            {
                sum += Volatile.Read(ref _count[i]);
            }
        }

        return sum;
    }
}
