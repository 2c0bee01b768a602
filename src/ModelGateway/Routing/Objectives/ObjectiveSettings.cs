namespace ModelGateway.Routing.Objectives;

/// <summary>
/// A compiled route objective (<c>objective:</c> in the routing file): at least <see cref="Percentile"/>% of
/// first tokens within the route's target, cheapest first, deployments above <see cref="MaxCostPer1k"/> last.
/// It rides on the route's <see cref="Configuration.SloSettings"/> (metric TTFT), which carries the target.
/// </summary>
internal sealed class ObjectiveSettings
{
    /// <summary>Default pause between two probes of a deployment that is out of favour.</summary>
    public static readonly TimeSpan DefaultProbeInterval = TimeSpan.FromSeconds(5);

    /// <summary>How far beyond the allowed miss share a deployment may miss and still take traffic while the route is within budget.</summary>
    public const double SpendFactor = 2;

    /// <summary>How far beyond the target its predicted percentile may be: a slight miss, not a slow box on a lucky streak.</summary>
    public const double SpendLatencyFactor = 1.5;

    public required int Percentile { get; init; }

    /// <summary>USD per 1,000 requests (at the route's expected token counts) above which a deployment is a last resort.</summary>
    public required double? MaxCostPer1k { get; init; }

    public required TimeSpan ProbeInterval { get; init; }

    /// <summary>The share of requests allowed to miss the target: 1 - percentile.</summary>
    public double AllowedMisses => 1 - (Percentile / 100.0);

    /// <summary>The route's running miss ratio. Lives as long as this compiled route: a reload starts it afresh.</summary>
    public MissBudget Budget { get; } = new();
}

/// <summary>
/// The share of a route's first tokens that missed its target, decayed with a 30 s half-life: what the route
/// has spent of its allowed misses lately. One small lock per streamed first byte on objective routes.
/// </summary>
internal sealed class MissBudget
{
    private const double HalfLifeSeconds = 30;

    private readonly Lock _gate = new();
    private double _served;
    private double _missed;
    private long _at;

    public void Record(bool missed, long now, long frequency)
    {
        lock (_gate)
        {
            var decay = Decay(now, frequency);
            _served = (_served * decay) + 1;
            _missed = (_missed * decay) + (missed ? 1 : 0);
            _at = now;
        }
    }

    /// <summary>Missed over served, decayed; 0 before anything was served.</summary>
    public double Ratio
    {
        get
        {
            lock (_gate)
            {
                return _served < 1e-9 ? 0 : _missed / _served;
            }
        }
    }

    private double Decay(long now, long frequency)
        => _at == 0 || now <= _at ? 1 : Math.Pow(2, -(now - _at) / (double)frequency / HalfLifeSeconds);
}
