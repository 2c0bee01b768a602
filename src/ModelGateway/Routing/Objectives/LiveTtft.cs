namespace ModelGateway.Routing.Objectives;

/// <summary>
/// Time-decayed estimate of one deployment's time to first token, for route objectives. Each sample's
/// weight halves every <see cref="HalfLife"/>, so the estimate follows a deployment within seconds and forgets
/// a bad minute a few half-lives later, however much traffic that minute had. The distribution is modelled
/// as log-normal (TTFT is skewed: a mean plus deviation in milliseconds would put p99 far too low), so a
/// percentile is <c>exp(mean + z·deviation)</c> of the decayed log-TTFT.
/// <para>
/// Attempts still waiting for their first byte are tracked too (<see cref="BeginWait"/>): one waiting longer
/// than the estimate is a late sample already, censored at its age, so a box that saturates is marked within
/// its own TTFT instead of once ~70 requests finish late.
/// </para>
/// <para>
/// Cost per request: one uncontended lock per finished first byte, one compare-and-swap to enter the wait
/// table and one write to leave it. Readers (routing decisions on objective routes) take the same lock briefly.
/// </para>
/// </summary>
internal sealed class LiveTtft : IDeploymentLoad
{
    /// <summary>Attempts tracked while waiting for a first byte; beyond this the oldest known still stands for all.</summary>
    public const int WaitSlots = 64;

    /// <summary>Below this decayed weight (in samples) the estimate is unknown: the deployment gets the benefit of the doubt.</summary>
    public const double MinimumWeight = 0.5;

    /// <summary>Default half-life of a sample's weight.</summary>
    public static readonly TimeSpan DefaultHalfLife = TimeSpan.FromSeconds(10);

    private readonly TimeProvider _timeProvider;
    private readonly Lock _gate = new();
    private readonly long[] _waiting = new long[WaitSlots];
    private int _nextSlot;

    // Decayed weight, mean and sum of squared deviations of ln(ttft ms), as of _at.
    private double _weight;
    private double _mean;
    private double _squares;
    private long _at;
    private long _halfLifeTicks;

    // Reported by a load signal (a scraped vLLM queue): requests waiting upstream, and when.
    private int _reportedWaiting;
    private int _reportedRunning;
    private long _reportedAt;

    public LiveTtft(TimeProvider timeProvider, TimeSpan halfLife)
    {
        _timeProvider = timeProvider;
        HalfLife = halfLife;
    }

    /// <summary>How long a sample takes to count half as much. Set from the routing file; a reload may change it.</summary>
    public TimeSpan HalfLife
    {
        get => TimeSpan.FromSeconds(Volatile.Read(ref _halfLifeTicks) / (double)_timeProvider.TimestampFrequency);
        set => Volatile.Write(ref _halfLifeTicks, Math.Max(1, (long)(value.TotalSeconds * _timeProvider.TimestampFrequency)));
    }

    /// <summary>The current timestamp of the clock the estimate runs on.</summary>
    public long Now => _timeProvider.GetTimestamp();

    /// <summary>Timestamp of the newest sample, or 0: the prober re-measures a deployment nobody measured for a probe interval.</summary>
    public long LastSampleAt => Volatile.Read(ref _at);

    /// <summary>Records a first byte (or a probe's one-token answer, or a timeout's lower bound) that took <paramref name="ttft"/>.</summary>
    public void Record(TimeSpan ttft)
    {
        var now = _timeProvider.GetTimestamp();
        var x = Math.Log(Math.Max(ttft.TotalMilliseconds, 1));
        lock (_gate)
        {
            var decay = Decay(now - _at);
            _weight *= decay;
            _squares *= decay;

            // West's weighted incremental mean and variance, the new sample weighing 1.
            Volatile.Write(ref _at, now);
            _weight += 1;
            var delta = x - _mean;
            _mean += delta / _weight;
            _squares += delta * (x - _mean);
        }
    }

    /// <summary>
    /// Starts the estimate afresh from these samples: probes showed a change of regime (a box that recovered).
    /// A p99 estimate keeps a slow spell for as long as the spell weighs 1% of the total, which even at a 10 s
    /// half-life is over a minute; two probes in a row under the target are the better evidence.
    /// </summary>
    public void Restart(TimeSpan previous, TimeSpan latest)
    {
        Reset();
        Record(previous);
        Record(latest);
    }

    /// <summary>Forgets every sample, e.g. when a deployment's endpoint changes on reload.</summary>
    public void Reset()
    {
        lock (_gate)
        {
            _weight = 0;
            _mean = 0;
            _squares = 0;
            Volatile.Write(ref _at, 0);
        }
    }

    /// <summary>
    /// Marks an attempt as waiting for its first byte since <paramref name="startedAt"/>; returns the slot to
    /// hand to <see cref="EndWait"/>, or -1 when every slot is taken (the waits already tracked speak for it).
    /// </summary>
    public int BeginWait(long startedAt)
    {
        var start = (int)((uint)Interlocked.Increment(ref _nextSlot) % WaitSlots);
        for (var i = 0; i < WaitSlots; i++)
        {
            var slot = (start + i) % WaitSlots;
            if (Interlocked.CompareExchange(ref _waiting[slot], startedAt, 0) == 0)
            {
                return slot;
            }
        }

        return -1;
    }

    /// <summary>The attempt's first byte came, or it ended without one.</summary>
    public void EndWait(int slot)
    {
        if (slot >= 0)
        {
            Volatile.Write(ref _waiting[slot], 0);
        }
    }

    /// <summary>How long the oldest attempt still waiting for a first byte has waited, in milliseconds (0: none).</summary>
    public double OldestWaitMs(long now)
    {
        var oldest = now;
        for (var i = 0; i < WaitSlots; i++)
        {
            var at = Volatile.Read(ref _waiting[i]);
            if (at != 0 && at < oldest)
            {
                oldest = at;
            }
        }

        return Math.Max(0, (now - oldest) * 1000.0 / _timeProvider.TimestampFrequency);
    }

    /// <summary>
    /// For a load signal (the metrics scraper of a self-hosted server): requests queued and running on the
    /// server itself, across every gateway replica. The prediction adds the queue to the gateway's own
    /// in-flight count while the report is fresh (<see cref="ReportedLoadLifetime"/>).
    /// </summary>
    public void ReportQueue(int waiting, int running)
    {
        Volatile.Write(ref _reportedWaiting, Math.Max(0, waiting));
        Volatile.Write(ref _reportedRunning, Math.Max(0, running));
        Volatile.Write(ref _reportedAt, _timeProvider.GetTimestamp());
    }

    /// <summary>A reported queue older than this no longer counts.</summary>
    public static readonly TimeSpan ReportedLoadLifetime = TimeSpan.FromSeconds(10);

    /// <inheritdoc />
    public int QueuedUpstream(long now)
    {
        var at = Volatile.Read(ref _reportedAt);
        return at != 0 && now - at <= (long)(ReportedLoadLifetime.TotalSeconds * _timeProvider.TimestampFrequency)
            ? Volatile.Read(ref _reportedWaiting)
            : 0;
    }

    /// <summary>Running requests the server itself last reported, or -1 when no fresh report exists.</summary>
    public int RunningUpstream(long now)
    {
        var at = Volatile.Read(ref _reportedAt);
        return at != 0 && now - at <= (long)(ReportedLoadLifetime.TotalSeconds * _timeProvider.TimestampFrequency)
            ? Volatile.Read(ref _reportedRunning)
            : -1;
    }

    /// <summary>The decayed log-normal parameters as of <paramref name="now"/>.</summary>
    public TtftDistribution DistributionAt(long now)
    {
        double weight, mean, squares;
        long at;
        lock (_gate)
        {
            weight = _weight;
            mean = _mean;
            squares = _squares;
            at = _at;
        }

        if (at == 0)
        {
            return default;
        }

        var decayed = weight * Decay(now - at);
        var deviation = weight > 0 ? Math.Sqrt(Math.Max(0, squares / weight)) : 0;
        return new TtftDistribution(decayed, mean, deviation);
    }

    private double Decay(long elapsedTicks)
        => elapsedTicks <= 0 ? 1 : Math.Pow(2, -elapsedTicks / (double)Volatile.Read(ref _halfLifeTicks));
}

/// <summary>A decayed log-normal estimate of TTFT: weight in samples, mean and deviation of ln(ms).</summary>
internal readonly record struct TtftDistribution(double Weight, double LogMean, double LogDeviation)
{
    public bool IsKnown => Weight >= LiveTtft.MinimumWeight;

    /// <summary>The TTFT at <paramref name="percentile"/> in milliseconds, NaN when unknown.</summary>
    public double Quantile(double percentile)
        => IsKnown ? Math.Exp(LogMean + (Normal.InverseCdf(percentile / 100.0) * LogDeviation)) : double.NaN;

    /// <summary>The share of first tokens expected later than <paramref name="targetMs"/>; 0 when unknown.</summary>
    public double MissProbability(double targetMs)
    {
        if (!IsKnown)
        {
            return 0;
        }

        var limit = Math.Log(Math.Max(targetMs, 1));
        if (LogDeviation < 1e-9)
        {
            return LogMean > limit ? 1 : 0;
        }

        return 1 - Normal.Cdf((limit - LogMean) / LogDeviation);
    }
}

/// <summary>The standard normal distribution, to within 1e-7: enough for latency percentiles.</summary>
internal static class Normal
{
    public static double Cdf(double z) => 0.5 * Erfc(-z / Math.Sqrt(2));

    /// <summary>Acklam's rational approximation of the inverse CDF (relative error below 1.2e-9).</summary>
    public static double InverseCdf(double p)
    {
        p = Math.Clamp(p, 1e-9, 1 - 1e-9);
        const double Low = 0.02425;
        if (p < Low)
        {
            var q = Math.Sqrt(-2 * Math.Log(p));
            return Tail(q);
        }

        if (p > 1 - Low)
        {
            var q = Math.Sqrt(-2 * Math.Log(1 - p));
            return -Tail(q);
        }

        var r = p - 0.5;
        var s = r * r;
        return (((((-3.969683028665376e+01 * s + 2.209460984245205e+02) * s - 2.759285104469687e+02) * s + 1.383577518672690e+02) * s - 3.066479806614716e+01) * s + 2.506628277459239e+00) * r
            / (((((-5.447609879822406e+01 * s + 1.615858368580409e+02) * s - 1.556989798598866e+02) * s + 6.680131188771972e+01) * s - 1.328068155288572e+01) * s + 1);

        static double Tail(double q)
            => (((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00)
                / ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q + 3.754408661907416e+00) * q + 1);
    }

    // Numerical Recipes' erfc (Chebyshev fit, fractional error below 1.2e-7).
    private static double Erfc(double x)
    {
        var z = Math.Abs(x);
        var t = 1 / (1 + (0.5 * z));
        var r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628288 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851973 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2 - r;
    }
}
