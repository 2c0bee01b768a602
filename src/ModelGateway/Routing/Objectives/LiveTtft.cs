namespace ModelGateway.Routing.Objectives;

/// <summary>
/// Time-decayed estimate of one deployment's time to first token, for route objectives. Each sample's
/// weight halves every <see cref="HalfLife"/>, so the estimate follows a deployment within seconds and forgets
/// a bad minute a few half-lives later, however much traffic that minute had. Samples go into a histogram
/// of 10%-wide buckets (1 ms to 200 s), so a percentile and the share of samples over a target are read as
/// they are, to within 10%, even when the answers are bimodal (fast while a box has free slots, slow once it
/// queues), where a fitted distribution would be wrong. Decay is forward: a new sample weighs 2^(age of the
/// landmark / half-life) more than one at the landmark, so nothing is rescaled per sample.
/// <para>
/// Attempts still waiting for their first byte are tracked too (<see cref="BeginWait"/>): one waiting longer
/// than the estimate is a late sample already, censored at its age, so a box that saturates is marked within
/// its own TTFT instead of once ~70 requests finish late.
/// </para>
/// <para>
/// Cost per request: one uncontended lock per first byte, one compare-and-swap to enter the wait table and
/// one write to leave it. Readers (decisions on objective routes) take the same lock and walk 128 buckets.
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

    private const int Buckets = 128;
    private const double Growth = 1.1;
    private static readonly double LogGrowth = Math.Log(Growth);

    // Forward-decayed histogram: a sample at time t adds 2^((t - _landmark) / half-life) to its bucket.
    private readonly double[] _buckets = new double[Buckets];
    private double _total;
    private long _landmark;
    private long _at;
    private long _halfLifeTicks;

    // Reported by a load signal (a scraped vLLM queue): requests waiting upstream, and when.
    private int _reportedWaiting;
    private int _reportedRunning;
    private long _reportedAt;
    private double _oldestWaitSeenMs;

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
        var bucket = Math.Clamp((int)(Math.Log(Math.Max(ttft.TotalMilliseconds, 1)) / LogGrowth), 0, Buckets - 1);
        lock (_gate)
        {
            if (_at == 0)
            {
                _landmark = now;
            }

            var exponent = (now - _landmark) / (double)Volatile.Read(ref _halfLifeTicks);
            if (exponent > 32)
            {
                // Move the landmark before the weights outgrow a double's precision.
                var factor = Math.Pow(2, -exponent);
                for (var i = 0; i < Buckets; i++)
                {
                    _buckets[i] *= factor;
                }

                _total *= factor;
                _landmark = now;
                exponent = 0;
            }

            var weight = Math.Pow(2, exponent);
            _buckets[bucket] += weight;
            _total += weight;
            Volatile.Write(ref _at, now);
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
            Array.Clear(_buckets);
            _total = 0;
            Volatile.Write(ref _at, 0);
        }
    }

    /// <summary>
    /// Marks an attempt as waiting for its first byte since <paramref name="startedAt"/>; returns the slot to
    /// hand to <see cref="EndWait"/>, or -1 when every slot is taken (the waits already tracked speak for it).
    /// </summary>
    public int BeginWait(long startedAt)
    {
        // Start at a slot picked by the thread: concurrent attempts rarely collide, and no shared counter is touched.
        var start = Environment.CurrentManagedThreadId % WaitSlots;
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

    /// <summary>
    /// The oldest wait as of the last <see cref="RefreshOldestWait"/> (the load-signal loop, every 50 ms), in
    /// milliseconds: what every strategy's ranking reads, one volatile value instead of a scan per decision.
    /// </summary>
    public double OldestWaitSeenMs => Volatile.Read(ref _oldestWaitSeenMs);

    /// <summary>Background loop: takes the age of the oldest attempt still waiting for its first byte.</summary>
    public void RefreshOldestWait(long now) => Volatile.Write(ref _oldestWaitSeenMs, OldestWaitMs(now));

    /// <summary>
    /// The latency a strategy ranks by: the measured estimate, or the age of an attempt still waiting for its
    /// first byte when that is longer (a late sample, counted before it finishes). Unknown stays unknown
    /// unless something already waits longer than that.
    /// </summary>
    public static double WithLate(double latencyMs, double oldestWaitMs)
        => oldestWaitMs <= 0 ? latencyMs
            : double.IsNaN(latencyMs) || oldestWaitMs > latencyMs ? oldestWaitMs : latencyMs;

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

    /// <summary>The decayed estimate as of <paramref name="now"/>: its weight in samples, and what to read from it.</summary>
    public TtftDistribution DistributionAt(long now)
    {
        lock (_gate)
        {
            if (_at == 0 || _total <= 0)
            {
                return default;
            }

            return new TtftDistribution(this, _total * Math.Pow(2, -(now - _landmark) / (double)Volatile.Read(ref _halfLifeTicks)));
        }
    }

    /// <summary>The TTFT at <paramref name="percentile"/> in milliseconds (interpolated within its bucket), NaN without samples.</summary>
    internal double QuantileMs(double percentile)
    {
        lock (_gate)
        {
            if (_total <= 0)
            {
                return double.NaN;
            }

            var wanted = Math.Clamp(percentile / 100.0, 0, 1) * _total;
            double below = 0;
            for (var i = 0; i < Buckets; i++)
            {
                var count = _buckets[i];
                if (count > 0 && below + count >= wanted)
                {
                    return Math.Pow(Growth, i + Math.Clamp((wanted - below) / count, 0, 1));
                }

                below += count;
            }

            return Math.Pow(Growth, Buckets);
        }
    }

    /// <summary>The decayed share of samples later than <paramref name="targetMs"/>, 0 without samples.</summary>
    internal double ShareOver(double targetMs)
    {
        var position = Math.Log(Math.Max(targetMs, 1)) / LogGrowth;
        var bucket = (int)position;
        lock (_gate)
        {
            if (_total <= 0 || bucket >= Buckets)
            {
                return 0;
            }

            // The target's own bucket counts by the part of it above the target.
            var over = _buckets[bucket] * (1 - (position - bucket));
            for (var i = bucket + 1; i < Buckets; i++)
            {
                over += _buckets[i];
            }

            return Math.Clamp(over / _total, 0, 1);
        }
    }

}

/// <summary>A decayed TTFT estimate as of one moment: its weight in samples, and the histogram to read from.</summary>
internal readonly record struct TtftDistribution(LiveTtft? Source, double Weight)
{
    public bool IsKnown => Source is not null && Weight >= LiveTtft.MinimumWeight;

    /// <summary>The TTFT at <paramref name="percentile"/> in milliseconds, NaN when unknown.</summary>
    public double Quantile(double percentile) => IsKnown ? Source!.QuantileMs(percentile) : double.NaN;

    /// <summary>The share of first tokens expected later than <paramref name="targetMs"/>; 0 when unknown.</summary>
    public double MissProbability(double targetMs) => IsKnown ? Source!.ShareOver(targetMs) : 0;
}
