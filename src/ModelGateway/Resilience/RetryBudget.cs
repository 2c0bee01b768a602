namespace ModelGateway.Resilience;

/// <summary>
/// Caps retries and failovers at a share of recent traffic (20% by default, with a floor so quiet
/// gateways can still fail over), so that when every provider is down the gateway does not
/// multiply the load on them. Counted per replica over a sliding ten-second window.
/// </summary>
internal sealed class RetryBudget
{
    private const int Buckets = 10;

    private readonly TimeProvider _timeProvider;
    private readonly long[] _second = new long[Buckets];
    private readonly long[] _requests = new long[Buckets];
    private readonly long[] _retries = new long[Buckets];

    public RetryBudget(TimeProvider timeProvider, double ratio = 0.2, int minimumPerSecond = 5)
    {
        _timeProvider = timeProvider;
        Ratio = ratio;
        MinimumPerSecond = minimumPerSecond;
    }

    public double Ratio { get; }

    public int MinimumPerSecond { get; }

    public void RecordRequest() => Interlocked.Increment(ref _requests[Bucket()]);

    /// <summary>Takes one retry from the budget, or says no.</summary>
    public bool TryWithdraw()
    {
        var bucket = Bucket();
        long requests = 0;
        long retries = 0;
        var now = CurrentSecond();
        for (var i = 0; i < Buckets; i++)
        {
            if (now - Volatile.Read(ref _second[i]) < Buckets)
            {
                requests += Volatile.Read(ref _requests[i]);
                retries += Volatile.Read(ref _retries[i]);
            }
        }

        var allowed = Math.Max(MinimumPerSecond * Buckets, (long)(requests * Ratio));
        if (retries >= allowed)
        {
            return false;
        }

        Interlocked.Increment(ref _retries[bucket]);
        return true;
    }

    private long CurrentSecond() => _timeProvider.GetUtcNow().ToUnixTimeSeconds();

    private int Bucket()
    {
        var second = CurrentSecond();
        var index = (int)(second % Buckets);
        var seen = Volatile.Read(ref _second[index]);
        if (seen != second && Interlocked.CompareExchange(ref _second[index], second, seen) == seen)
        {
            // First touch of this bucket in a new second: it starts empty. A racing increment may be lost; the budget is approximate by design.
            Interlocked.Exchange(ref _requests[index], 0);
            Interlocked.Exchange(ref _retries[index], 0);
        }

        return index;
    }
}
