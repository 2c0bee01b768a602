using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Providers;
using ModelGateway.Routing;

namespace ModelGateway.Resilience;

/// <summary>
/// Tests deployments whose circuit is open with a cheap request (<see cref="IProviderAdapter.Probe"/>)
/// every probe interval plus up to its jitter, so a deployment that recovers serves again within one
/// interval instead of waiting out a break, and one that stays down costs at most one probe per
/// interval (per replica). A healthy answer closes the circuit; any other keeps it open and backs the
/// break off. Probes of one deployment never overlap, and no real request is spent on them.
/// </summary>
internal sealed partial class HealthProber(
    RoutingConfigManager config,
    FailoverExecutor executor,
    TimeProvider timeProvider,
    IOptions<GatewayOptions> options,
    ILogger<HealthProber> logger,
    IServiceProvider services) : BackgroundService
{
    // With Redis state: a healthy probe closes the deployment's circuit on the other replicas too.
    private readonly RecoverySharing? _sharing = services.GetService<RecoverySharing>();

    /// <summary>How often open circuits are looked at; far below any probe interval (at least 500ms).</summary>
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);

    private readonly ConcurrentDictionary<DeploymentState, byte> _running = new();
    private long _ticks;

    /// <summary>Turns of the loop so far and probes running now: what a test driving a fake clock waits on.</summary>
    internal long Ticks => Interlocked.Read(ref _ticks);

    internal int Running => _running.Count;

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
                Interlocked.Increment(ref _ticks);
                continue;
            }

            var now = timeProvider.GetTimestamp();
            foreach (var deployment in config.Current.DeploymentList)
            {
                var probe = deployment.Provider.Probe;
                var circuit = deployment.State.Circuit;
                if (!probe.Enabled || circuit.StatusAt(now) == CircuitStatus.Closed || _running.ContainsKey(deployment.State))
                {
                    continue;
                }

                var due = circuit.NextProbeAt;
                if (due == 0)
                {
                    // Just opened: the first probe comes one interval later, the failures that opened it being fresh.
                    circuit.ScheduleProbe(NextWait(probe));
                }
                else if (now >= due && _running.TryAdd(deployment.State, 0))
                {
                    _ = ProbeAsync(deployment, circuit, probe, stoppingToken);
                }
            }

            Interlocked.Increment(ref _ticks);
        }
    }

    // The jitter only ever adds, so two probes of one deployment are at least an interval apart.
    private static TimeSpan NextWait(ProbeSettings probe) => probe.Interval + (probe.Jitter * Random.Shared.NextDouble());

    private async Task ProbeAsync(Deployment deployment, DeploymentCircuit circuit, ProbeSettings probe, CancellationToken stoppingToken)
    {
        try
        {
            var (healthy, detail) = await SendAsync(deployment, probe.Timeout, stoppingToken).ConfigureAwait(false);
            LogProbed(logger, deployment.Name, healthy, detail);
            circuit.ScheduleProbe(NextWait(probe));
            circuit.ProbeCompleted(healthy);
            if (healthy)
            {
                _sharing?.Publish(deployment.Name);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (Exception ex)
        {
            LogProbeFailed(logger, deployment.Name, ex);
            circuit.ScheduleProbe(NextWait(probe));
        }
        finally
        {
            _running.TryRemove(deployment.State, out _);
        }
    }

    private ValueTask<(bool Healthy, string Detail)> SendAsync(Deployment deployment, TimeSpan timeout, CancellationToken cancellationToken)
        => SendProbeAsync(deployment, config.Current, executor, timeProvider, options.Value.MaxJsonDepth, "probe-", timeout, cancellationToken);

    /// <summary>Sends the deployment's probe request (<see cref="IProviderAdapter.Probe"/>) once; the route-objective prober sends the same.</summary>
    internal static async ValueTask<(bool Healthy, string Detail)> SendProbeAsync(
        Deployment deployment, GatewayCatalog catalog, FailoverExecutor executor, TimeProvider timeProvider, int maxJsonDepth, string idPrefix, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var adapter = deployment.Provider.Adapter;
        var probe = adapter.Probe(deployment);

        // The probe reads as a request that came in on the probe's client path, so adapters need nothing special.
        var http = new DefaultHttpContext();
        http.Request.Method = HttpMethods.Post;
        http.Request.Scheme = "http";
        http.Request.Path = probe.Path;
        using var request = new GatewayRequest(http, probe.Protocol, probe.Operation, idPrefix + Guid.NewGuid().ToString("N")[..12], timeProvider.GetTimestamp());
        var body = ArrayPool<byte>.Shared.Rent(probe.Body.Length);
        probe.Body.Span.CopyTo(body);
        request.SetBody(body, probe.Body.Length);
        if (!probe.Protocol.TryParse(request.Body, probe.Operation, maxJsonDepth, out request.Info, out _))
        {
            return (false, "the probe request does not parse");
        }

        request.Catalog = catalog;
        var call = new UpstreamRequest(request, deployment, adapter.PassesThrough(probe.Protocol.Wire));
        return await executor.ProbeAsync(call, timeout, cancellationToken).ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 3010, Level = LogLevel.Information, Message = "Health probe of {Deployment}: healthy={Healthy} ({Detail})")]
    private static partial void LogProbed(ILogger logger, string deployment, bool healthy, string detail);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Warning, Message = "Health probe of {Deployment} could not run")]
    private static partial void LogProbeFailed(ILogger logger, string deployment, Exception exception);
}
