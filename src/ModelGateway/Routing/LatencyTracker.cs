namespace ModelGateway.Routing;

/// <summary>
/// Live latency of one deployment, measured from real traffic: an EWMA of time to first token and of
/// total duration for the <c>latency</c> strategy, and windowed percentiles for latency objectives.
/// Writers take a short lock; readers (every routing decision) read published values without one.
/// </summary>
internal sealed class LatencyTracker
{
    /// <summary>How many recent samples the percentile window keeps at most.</summary>
    public const int Capacity = 256;

    /// <summary>Fewer samples than this and a percentile is "unknown": the deployment gets the benefit of the doubt.</summary>
    public const int MinimumSamples = 5;

    /// <summary>Below this many samples the EWMAs are the window's median instead: one outlier among few samples must not steer the latency strategy.</summary>
    public const int MedianBelow = 20;

    private const double Alpha = 0.2;
    // Percentiles are recomputed every RecomputeEvery, while the window fills, and after a whole
    // window's turnover: at thousands of requests per second a sort per 16 samples cost
    // more CPU than the rest of the deployment's bookkeeping together.
    private const int RecomputeEverySamples = Capacity;
    private static readonly TimeSpan RecomputeEvery = TimeSpan.FromMilliseconds(250);

    private readonly TimeProvider _timeProvider;
    private readonly Lock _gate = new();
    private readonly long[] _at = new long[Capacity];
    private readonly float[] _ttft = new float[Capacity];
    private readonly float[] _duration = new float[Capacity];
    private readonly float[] _scratch = new float[Capacity];
    private int _next;
    private int _count;
    private int _sinceRecompute;
    private long _lastRecompute;
    private double _ewmaTtft = double.NaN;
    private double _ewmaDuration = double.NaN;
    private int _ttftSamples;
    private int _durationSamples;
    private long _lastSampleAt;
    private LatencySnapshot _snapshot = LatencySnapshot.Empty;

    private long _windowTicks;

    public LatencyTracker(TimeProvider timeProvider, TimeSpan window)
    {
        _timeProvider = timeProvider;
        Window = window;
        Live = new Objectives.LiveTtft(timeProvider, Objectives.LiveTtft.DefaultHalfLife);
    }

    /// <summary>The time-decayed TTFT estimate that route objectives rank by, fed as first bytes arrive (not when responses finish).</summary>
    public Objectives.LiveTtft Live { get; }

    /// <summary>Samples older than this no longer count. Set from the routing file; a reload may change it.</summary>
    public TimeSpan Window
    {
        get => TimeSpan.FromSeconds(Volatile.Read(ref _windowTicks) / (double)_timeProvider.TimestampFrequency);
        set => Volatile.Write(ref _windowTicks, (long)(value.TotalSeconds * _timeProvider.TimestampFrequency));
    }

    /// <summary>EWMA of time to first token in milliseconds, or NaN before any streamed sample.</summary>
    public double EwmaTtftMs => Volatile.Read(ref _ewmaTtft);

    /// <summary>EWMA of whole-request duration in milliseconds, or NaN before any sample.</summary>
    public double EwmaDurationMs => Volatile.Read(ref _ewmaDuration);

    /// <summary>Timestamp (<see cref="TimeProvider.GetTimestamp"/>) of the newest sample, or 0.</summary>
    public long LastSampleAt => Volatile.Read(ref _lastSampleAt);

    /// <summary>The latest percentiles. Reads never block writers.</summary>
    public LatencySnapshot Snapshot => SnapshotAt(_timeProvider.GetTimestamp());

    /// <summary>True when the newest sample is still inside the window.</summary>
    public bool IsFresh => IsFreshAt(_timeProvider.GetTimestamp());

    /// <summary>The percentiles as of <paramref name="now"/>: empty once the newest sample has left the window.</summary>
    public LatencySnapshot SnapshotAt(long now) => IsFreshAt(now) ? Volatile.Read(ref _snapshot) : LatencySnapshot.Empty;

    public bool IsFreshAt(long now)
    {
        // Raw timestamp arithmetic: this runs for every candidate of every decision.
        var last = LastSampleAt;
        return last != 0 && now - last <= Volatile.Read(ref _windowTicks);
    }

    /// <summary>Records one finished (or timed-out) attempt. <paramref name="ttft"/> is null for non-streamed answers.</summary>
    public void Record(TimeSpan? ttft, TimeSpan duration)
    {
        var now = _timeProvider.GetTimestamp();
        lock (_gate)
        {
            if (_lastSampleAt != 0 && now - _lastSampleAt > _windowTicks)
            {
                // Everything known is older than the window: start the averages afresh.
                _ewmaTtft = double.NaN;
                _ewmaDuration = double.NaN;
                _ttftSamples = 0;
                _durationSamples = 0;
            }

            var slot = _next;
            _at[slot] = now;
            _ttft[slot] = ttft is { } t ? (float)t.TotalMilliseconds : float.NaN;
            _duration[slot] = (float)duration.TotalMilliseconds;
            _next = (slot + 1) % Capacity;
            _count = Math.Min(_count + 1, Capacity);

            if (ttft is { } first)
            {
                _ewmaTtft = Average(_ewmaTtft, first.TotalMilliseconds, ++_ttftSamples);
            }

            _ewmaDuration = Average(_ewmaDuration, duration.TotalMilliseconds, ++_durationSamples);
            Volatile.Write(ref _lastSampleAt, now);

            // A deployment serving only non-streamed answers never gets TTFT samples: counting their absence as
            // "few" recomputed (sorted) the whole window on every request, the biggest CPU cost of a plain request.
            var fewTtft = ttft is not null && _ttftSamples < MedianBelow;
            var few = fewTtft || _durationSamples < MedianBelow;
            if (++_sinceRecompute >= RecomputeEverySamples || few || _count <= MinimumSamples * 4 || _timeProvider.GetElapsedTime(_lastRecompute, now) >= RecomputeEvery)
            {
                Recompute(now);
            }

            if (few)
            {
                // The median of few samples shrugs off the one cold or stuck request that a mean would follow.
                var snapshot = _snapshot;
                if (fewTtft && !double.IsNaN(snapshot.TtftP50))
                {
                    _ewmaTtft = snapshot.TtftP50;
                }

                if (_durationSamples < MedianBelow && !double.IsNaN(snapshot.DurationP50))
                {
                    _ewmaDuration = snapshot.DurationP50;
                }
            }
        }
    }

    // The plain mean of the first samples, then an EWMA: one cold first request (a new connection, a
    // JIT-cold path) weighs 1/n instead of staying 80% of the estimate until exploration re-measures it.
    private static double Average(double current, double sample, int count)
    {
        var alpha = Math.Max(Alpha, 1.0 / count);
        return double.IsNaN(current) ? sample : (alpha * sample) + ((1 - alpha) * current);
    }

    /// <summary>Forgets every sample, e.g. when a deployment's endpoint changes on reload.</summary>
    public void Reset()
    {
        lock (_gate)
        {
            _count = 0;
            _next = 0;
            _ewmaTtft = double.NaN;
            _ewmaDuration = double.NaN;
            _ttftSamples = 0;
            _durationSamples = 0;
            Volatile.Write(ref _lastSampleAt, 0);
            Volatile.Write(ref _snapshot, LatencySnapshot.Empty);
        }

        Live.Reset();
    }

    private void Recompute(long now)
    {
        _sinceRecompute = 0;
        _lastRecompute = now;
        var ttft = Collect(_ttft, now, out var ttftCount);
        var (t50, t90, t95, t99) = Percentiles(ttft, ttftCount);
        var duration = Collect(_duration, now, out var durationCount);
        var (d50, d90, d95, d99) = Percentiles(duration, durationCount);
        Volatile.Write(ref _snapshot, new LatencySnapshot(ttftCount, t50, t90, t95, t99, durationCount, d50, d90, d95, d99));
    }

    private Span<float> Collect(float[] source, long now, out int count)
    {
        count = 0;
        for (var i = 0; i < _count; i++)
        {
            var value = source[i];
            if (!float.IsNaN(value) && now - _at[i] <= _windowTicks)
            {
                _scratch[count++] = value;
            }
        }

        var span = _scratch.AsSpan(0, count);
        span.Sort();
        return span;
    }

    private static (double P50, double P90, double P95, double P99) Percentiles(Span<float> sorted, int count)
    {
        if (count == 0)
        {
            return (double.NaN, double.NaN, double.NaN, double.NaN);
        }

        return (At(sorted, 0.50), At(sorted, 0.90), At(sorted, 0.95), At(sorted, 0.99));

        // Nearest-rank percentile: the smallest sample with at least p of the samples at or below it.
        static double At(Span<float> sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}

/// <summary>Percentiles of one deployment's recent latency, in milliseconds (NaN when unknown).</summary>
internal sealed record LatencySnapshot(
    int TtftSamples,
    double TtftP50,
    double TtftP90,
    double TtftP95,
    double TtftP99,
    int DurationSamples,
    double DurationP50,
    double DurationP90,
    double DurationP95,
    double DurationP99)
{
    public static readonly LatencySnapshot Empty = new(0, double.NaN, double.NaN, double.NaN, double.NaN, 0, double.NaN, double.NaN, double.NaN, double.NaN);

    /// <summary>The percentile a latency objective asks about, or NaN when there are too few samples.</summary>
    public double Get(Configuration.LatencyMetric metric, int percentile)
    {
        var samples = metric == Configuration.LatencyMetric.Ttft ? TtftSamples : DurationSamples;
        if (samples < LatencyTracker.MinimumSamples)
        {
            return double.NaN;
        }

        return (metric, percentile) switch
        {
            (Configuration.LatencyMetric.Ttft, <= 50) => TtftP50,
            (Configuration.LatencyMetric.Ttft, <= 90) => TtftP90,
            (Configuration.LatencyMetric.Ttft, <= 95) => TtftP95,
            (Configuration.LatencyMetric.Ttft, _) => TtftP99,
            (_, <= 50) => DurationP50,
            (_, <= 90) => DurationP90,
            (_, <= 95) => DurationP95,
            _ => DurationP99,
        };
    }
}
