using Microsoft.Extensions.Options;
using ModelGateway.Wire;

namespace ModelGateway.Hosting;

/// <summary>
/// Takes a replica out of a fleet without losing work. On SIGTERM (or any host stop): readiness turns
/// false at once; the listeners stay open for <see cref="ShutdownOptions.Delay"/> so load balancers
/// notice; then the server refuses new connections and waits for requests in flight; when
/// <see cref="ShutdownOptions.Grace"/> runs out, <see cref="GraceOver"/> fires and every request still
/// running ends with an error (a stream gets the in-band error event, never a silent cut). Usage and
/// settles held for Redis are written when their stores are disposed, after the server has stopped.
/// </summary>
internal sealed partial class GracefulDrain : IHostedLifecycleService, IDisposable
{
    private readonly ShutdownOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<GracefulDrain> _logger;
    private readonly CancellationTokenSource _graceOver;
    private CancellationTokenRegistration _onStopping;
    private long _drainStarted;
    private int _draining;
    private int _cutShort;

    public GracefulDrain(IOptions<ShutdownOptions> options, IHostApplicationLifetime lifetime, TimeProvider timeProvider, ILogger<GracefulDrain> logger)
    {
        _options = options.Value;
        _lifetime = lifetime;
        _timeProvider = timeProvider;
        _logger = logger;
        _graceOver = new CancellationTokenSource(Timeout.InfiniteTimeSpan, timeProvider);
    }

    /// <summary>True from the moment the host is asked to stop: readiness reports unhealthy.</summary>
    public bool IsDraining => Volatile.Read(ref _draining) == 1;

    /// <summary>Fires when the grace for requests in flight is over; requests still running end with an error.</summary>
    public CancellationToken GraceOver => _graceOver.Token;

    public bool IsGraceOver => _graceOver.IsCancellationRequested;

    /// <summary>The error for a request the shutdown grace ended: retryable, on another replica.</summary>
    public ApiError CutShort()
    {
        Interlocked.Increment(ref _cutShort);
        return new ApiError(503, "The gateway replica is shutting down and its grace for requests in flight ran out; the answer is incomplete. Retry the request.", "server_error", "server_shutting_down")
        {
            ShouldRetry = true,
            RetryAfter = TimeSpan.Zero,
        };
    }

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        // ApplicationStopping fires first on SIGTERM (the console lifetime raises it before the host
        // stops anything): readiness must turn false then, not after other services' stop steps.
        _onStopping = _lifetime.ApplicationStopping.UnsafeRegister(static state => ((GracefulDrain)state!).BeginDrain(), this);
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Runs before any hosted service's StopAsync, so before the web server closes its listeners:
    /// waiting here is what keeps the replica accepting while load balancers catch up.
    /// </summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        BeginDrain();
        if (_options.Delay > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(_options.Delay, _timeProvider, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The host's own deadline (above Delay + Grace) or a second stop request: close now.
            }
        }

        LogClosing(_logger, _options.Grace.TotalSeconds);
        if (_options.Grace > TimeSpan.Zero)
        {
            _graceOver.CancelAfter(_options.Grace);
        }
        else
        {
            await _graceOver.CancelAsync().ConfigureAwait(false);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs after the web server has stopped: every request has finished or been ended.</summary>
    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        LogDrained(_logger, _timeProvider.GetElapsedTime(Volatile.Read(ref _drainStarted)).TotalSeconds, Volatile.Read(ref _cutShort));
        return Task.CompletedTask;
    }

    private void BeginDrain()
    {
        if (Interlocked.Exchange(ref _draining, 1) == 0)
        {
            Volatile.Write(ref _drainStarted, _timeProvider.GetTimestamp());
            LogDraining(_logger, _options.Delay.TotalSeconds);
        }
    }

    public void Dispose()
    {
        _onStopping.Dispose();
        _graceOver.Dispose();
    }

    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "Shutting down: readiness is now false; still accepting for {DelaySeconds} s so load balancers stop sending new work")]
    private static partial void LogDraining(ILogger logger, double delaySeconds);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Information, Message = "Shutting down: refusing new connections; requests in flight have {GraceSeconds} s to finish")]
    private static partial void LogClosing(ILogger logger, double graceSeconds);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Information, Message = "Shutting down: drained after {ElapsedSeconds:0.0} s; {CutShort} requests were ended by the grace")]
    private static partial void LogDrained(ILogger logger, double elapsedSeconds, int cutShort);
}
