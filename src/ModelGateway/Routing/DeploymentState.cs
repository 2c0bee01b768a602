using ModelGateway.Resilience;

namespace ModelGateway.Routing;

/// <summary>
/// What the gateway knows right now about one deployment: requests in flight, live latency, its
/// circuit, and whether it asked us to back off. Kept across config reloads while the deployment
/// keeps its name, so a reload does not forget that a provider is down.
/// </summary>
internal sealed class DeploymentState
{
    private readonly TimeProvider _timeProvider;
    private int _inFlight;
    private long _coolingUntil;
    private long _limitedUntil;
    private long _requests;
    private long _failures;

    public DeploymentState(string name, TimeProvider timeProvider, TimeSpan latencyWindow)
    {
        Name = name;
        _timeProvider = timeProvider;
        Latency = new LatencyTracker(timeProvider, latencyWindow);
        Attempts = new RollingCounter(timeProvider);
        Errors = new RollingCounter(timeProvider);
        Quota = new Quotas.QuotaState(timeProvider);
    }

    /// <summary>Attempts and failed attempts over the last minute, for the ops page.</summary>
    public RollingCounter Attempts { get; }

    public RollingCounter Errors { get; }

    public string Name { get; }

    public LatencyTracker Latency { get; }

    /// <summary>The circuit breaker; replaced when its settings change on reload.</summary>
    public DeploymentCircuit Circuit { get; set; } = null!;

    /// <summary>The connection settings the state was built for; a change resets latency.</summary>
    public string? Fingerprint { get; set; }

    public int InFlight => Volatile.Read(ref _inFlight);

    public long Requests => Interlocked.Read(ref _requests);

    public long Failures => Interlocked.Read(ref _failures);

    public void Enter()
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _requests);
    }

    public void Exit()
    {
        Interlocked.Decrement(ref _inFlight);
        FleetLeases.ReleaseOne();
    }

    /// <summary>Fleet-wide capacity leases this replica holds (Redis state only); one goes back as each attempt ends.</summary>
    public Signals.FleetLeases FleetLeases { get; } = new();

    public void CountFailure()
    {
        Interlocked.Increment(ref _failures);
        Errors.Increment();
    }

    /// <summary>The upstream said 429: keep traffic away for as long as it asked.</summary>
    public void CoolDown(TimeSpan duration) => Extend(ref _coolingUntil, duration);

    /// <summary>The gateway's own count says the deployment's RPM/TPM is spent until the window moves.</summary>
    public void MarkLimited(TimeSpan duration) => Extend(ref _limitedUntil, duration);

    public TimeSpan CoolingRemaining => CoolingRemainingAt(_timeProvider.GetTimestamp());

    public TimeSpan LimitedRemaining => LimitedRemainingAt(_timeProvider.GetTimestamp());

    public TimeSpan CoolingRemainingAt(long now) => Remaining(Volatile.Read(ref _coolingUntil), now);

    public TimeSpan LimitedRemainingAt(long now) => Remaining(Volatile.Read(ref _limitedUntil), now);

    private void Extend(ref long until, TimeSpan duration)
    {
        var target = _timeProvider.GetTimestamp() + (long)(duration.TotalSeconds * _timeProvider.TimestampFrequency);
        long current;
        do
        {
            current = Volatile.Read(ref until);
            if (current >= target)
            {
                return;
            }
        }
        while (Interlocked.CompareExchange(ref until, target, current) != current);
    }

    private TimeSpan Remaining(long until, long now)
    {
        if (until == 0)
        {
            return TimeSpan.Zero;
        }

        return until > now ? TimeSpan.FromSeconds((until - now) / (double)_timeProvider.TimestampFrequency) : TimeSpan.Zero;
    }

    /// <summary>Live load signals: the server's last scraped queue, for deployments with <c>metrics</c>.</summary>
    public Signals.LoadSignal Load { get; } = new();

    /// <summary>Quotas: what the provider last said is left of this deployment's quota.</summary>
    public Quotas.QuotaState Quota { get; }
}

/// <summary>Per-route counters that pace exploration, spread ties and drive weighted picks.</summary>
internal sealed class RouteCounters
{
    private long _decisions;

    public long Next() => Interlocked.Increment(ref _decisions);
}
