using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.Resilience;

namespace ModelGateway.Routing.Objectives;

/// <summary>
/// Re-measures deployments that are out of favour on an objective route (their estimate misses the target, or
/// they failed lately) with the provider's own one-token probe (<see cref="Providers.IProviderAdapter.Probe"/>),
/// once per the route's <c>probeInterval</c>, so they win traffic back when they recover without a client request
/// being spent on finding out. A deployment measured by client traffic within the interval is not probed, and
/// one whose circuit is open is left to <see cref="HealthProber"/>. Probes of one deployment never overlap.
/// </summary>
internal sealed partial class ObjectiveProber(
    RoutingConfigManager config,
    FailoverExecutor executor,
    TimeProvider timeProvider,
    IOptions<GatewayOptions> options,
    ILogger<ObjectiveProber> logger) : BackgroundService
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);

    private readonly ConcurrentDictionary<DeploymentState, long> _lastProbe = new();
    private readonly ConcurrentDictionary<DeploymentState, byte> _running = new();

    // The previous probe's TTFT of each deployment when it met the target of the route that probed it.
    private readonly ConcurrentDictionary<DeploymentState, (TimeSpan Ttft, long At)> _metLast = new();
    private long _probes;

    /// <summary>Probes sent so far, for tests and the ops page.</summary>
    internal long Probes => Interlocked.Read(ref _probes);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Tick, timeProvider, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (!config.IsLoaded)
            {
                continue;
            }

            var catalog = config.Current;
            var now = timeProvider.GetTimestamp();
            foreach (var route in catalog.RouteList)
            {
                if (route.Slo is not { Objective: { } objective } slo)
                {
                    continue;
                }

                foreach (var deployment in route.IsAuto ? catalog.DeploymentList : route.Targets)
                {
                    if (IsDue(deployment, slo, objective, now) && _running.TryAdd(deployment.State, 0))
                    {
                        _lastProbe[deployment.State] = now;
                        _ = ProbeAsync(deployment, catalog, slo, objective, stoppingToken);
                    }
                }
            }
        }
    }

    private bool IsDue(Deployment deployment, SloSettings slo, ObjectiveSettings objective, long now)
    {
        var state = deployment.State;
        var interval = (long)(objective.ProbeInterval.TotalSeconds * timeProvider.TimestampFrequency);
        if (!deployment.Provider.Probe.Enabled || state.Circuit.StatusAt(now) != CircuitStatus.Closed || _running.ContainsKey(state))
        {
            return false;
        }

        if (_metLast.TryGetValue(state, out var met) && state.Latency.Live.LastSampleAt > met.At)
        {
            // Client traffic measured it since the probe that met: that decides, not a confirming probe.
            _metLast.TryRemove(state, out _);
        }
        else if (met.At != 0)
        {
            // A deployment out of favour just met the target once: confirm at once rather than a whole interval later,
            // so one that recovered (or only looked slow on a cold first connection) serves again within two probes.
            return true;
        }

        if (_lastProbe.TryGetValue(state, out var probed) && now - probed < interval)
        {
            return false;
        }

        var lastSample = state.Latency.Live.LastSampleAt;
        if (lastSample != 0 && now - lastSample < interval)
        {
            // Client traffic (or a probe for another route) measured it lately.
            return false;
        }

        var estimate = LiveEstimate.Of(deployment, objective.Percentile, now);
        var missing = estimate.IsKnown && estimate.EstimateMs > slo.Target.TotalMilliseconds;
        var failing = state.Errors.Sum((int)Math.Max(1, Math.Ceiling(objective.ProbeInterval.TotalSeconds))) > 0;

        // Unknown (never measured, or its samples decayed away) gets the benefit of the doubt in ranking: a cheap but
        // slow deployment would then take client requests until their first bytes came late. A probe learns it first.
        return missing || failing || !estimate.IsKnown;
    }

    private async Task ProbeAsync(Deployment deployment, GatewayCatalog catalog, SloSettings slo, ObjectiveSettings objective, CancellationToken stoppingToken)
    {
        try
        {
            Interlocked.Increment(ref _probes);
            var timeout = deployment.Provider.Probe.Timeout;
            var started = timeProvider.GetTimestamp();
            var (healthy, detail) = await SendAsync(deployment, catalog, timeout, stoppingToken).ConfigureAwait(false);
            var elapsed = timeProvider.GetElapsedTime(started);
            if (healthy || elapsed >= timeout)
            {
                // A one-token answer's whole duration is its time to first token; a timeout is a lower bound of it.
                Measured(deployment, slo, objective, healthy && elapsed <= slo.Target, elapsed);
            }
            else
            {
                // No measure (an error answer, or skipped): a confirmation is not owed, back to one probe per interval.
                _metLast.TryRemove(deployment.State, out _);
            }

            LogProbed(logger, deployment.Name, healthy, elapsed.TotalMilliseconds, detail);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (Exception ex)
        {
            LogProbeFailed(logger, deployment.Name, ex);
        }
        finally
        {
            _running.TryRemove(deployment.State, out _);
        }
    }

    private void Measured(Deployment deployment, SloSettings slo, ObjectiveSettings objective, bool met, TimeSpan ttft)
    {
        var state = deployment.State;
        var live = state.Latency.Live;
        if (!met)
        {
            _metLast.TryRemove(state, out _);
            live.Record(ttft);
            return;
        }

        var stillMissing = LiveEstimate.Of(deployment, objective.Percentile, timeProvider.GetTimestamp()).EstimateMs > slo.Target.TotalMilliseconds;
        if (stillMissing && _metLast.TryRemove(state, out var previous))
        {
            // Two probes in a row met the target: the deployment recovered, its slow spell is history.
            live.Restart(previous.Ttft, ttft);
            LogRecovered(logger, deployment.Name, previous.Ttft.TotalMilliseconds, ttft.TotalMilliseconds);
            return;
        }

        live.Record(ttft);
        if (stillMissing)
        {
            _metLast[state] = (ttft, live.LastSampleAt);
        }
    }

    private ValueTask<(bool Healthy, string Detail)> SendAsync(Deployment deployment, GatewayCatalog catalog, TimeSpan timeout, CancellationToken cancellationToken)
        => HealthProber.SendProbeAsync(deployment, catalog, executor, timeProvider, options.Value.MaxJsonDepth, "slo-probe-", timeout, cancellationToken);

    [LoggerMessage(EventId = 3030, Level = LogLevel.Debug, Message = "Objective probe of {Deployment}: healthy={Healthy} in {ElapsedMs:F0}ms ({Detail})")]
    private static partial void LogProbed(ILogger logger, string deployment, bool healthy, double elapsedMs, string detail);

    [LoggerMessage(EventId = 3032, Level = LogLevel.Information, Message = "Objective probes of {Deployment} met the target twice in a row ({PreviousMs:F0}ms, {LatestMs:F0}ms): its TTFT estimate starts afresh")]
    private static partial void LogRecovered(ILogger logger, string deployment, double previousMs, double latestMs);

    [LoggerMessage(EventId = 3031, Level = LogLevel.Warning, Message = "Objective probe of {Deployment} could not run")]
    private static partial void LogProbeFailed(ILogger logger, string deployment, Exception exception);
}
