using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ModelGateway.State.Redis;

/// <summary>
/// The shared Redis connection and a verdict on whether it can be used right now. The gateway
/// starts and serves while Redis is down; after a failure it stops sending commands (no request
/// waits on a dead Redis) and probes until Redis answers again.
/// </summary>
internal sealed partial class RedisConnection : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(500);

    private readonly StateOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RedisConnection> _logger;
    private ConnectionMultiplexer? _multiplexer;
    private ITimer? _probe;
    private int _available;
    private int _probing;

    public RedisConnection(IOptions<StateOptions> options, TimeProvider timeProvider, ILogger<RedisConnection> logger)
    {
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>True while Redis answers. Read on every request; never blocks.</summary>
    public bool IsAvailable => Volatile.Read(ref _available) == 1 && _multiplexer is not null;

    public IDatabase Database => _multiplexer!.GetDatabase();

    public ISubscriber Subscriber => _multiplexer!.GetSubscriber();

    /// <summary>Raised when Redis becomes reachable (again), so queued work can be flushed and subscriptions made.</summary>
    public event Action? Restored;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var configuration = ConfigurationOptions.Parse(_options.Redis!);
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = 2000;
        configuration.SyncTimeout = (int)_options.CommandTimeout.TotalMilliseconds;
        configuration.AsyncTimeout = (int)_options.CommandTimeout.TotalMilliseconds;
        configuration.ConnectRetry = 2;
        configuration.KeepAlive = 5;
        configuration.ClientName = "modelgateway";
        configuration.ReconnectRetryPolicy = new LinearRetry(500);

        // With AbortOnConnectFail off this returns even when Redis is down, and keeps reconnecting.
        _multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        _multiplexer.ConnectionFailed += (_, args) => OnConnectionFailed(args);
        _multiplexer.ConnectionRestored += (_, _) => StartProbing();
        _probe = _timeProvider.CreateTimer(_ => _ = ProbeAsync(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        if (_multiplexer.IsConnected)
        {
            Volatile.Write(ref _available, 1);
            LogConnected(_logger, string.Join(", ", configuration.EndPoints));
            Restored?.Invoke();
        }
        else
        {
            LogStartingDegraded(_logger, string.Join(", ", configuration.EndPoints), _options.FailurePolicy.ToString());
            StartProbing();
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Called by whoever saw a Redis command fail: stop using Redis until a probe succeeds.</summary>
    public void ReportFailure(Exception exception)
    {
        if (exception is RedisServerException server && !IsOutage(server.Message))
        {
            // Redis answered, with an error: a bug to fix, not an outage to ride out.
            LogCommandError(_logger, server.Message);
            return;
        }

        MarkUnavailable(exception.Message);
    }

    private static bool IsOutage(string message)
        => message.StartsWith("LOADING", StringComparison.Ordinal) || message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
           || message.StartsWith("READONLY", StringComparison.Ordinal) || message.StartsWith("CLUSTERDOWN", StringComparison.Ordinal)
           || message.StartsWith("TRYAGAIN", StringComparison.Ordinal) || message.StartsWith("BUSY", StringComparison.Ordinal);

    private void OnConnectionFailed(ConnectionFailedEventArgs args)
    {
        // One node of a cluster dropping a connection (a topology change, a slow connect under load)
        // is not an outage while others answer: commands that then fail report it themselves.
        if (_multiplexer is { IsConnected: true })
        {
            StartProbing();
            return;
        }

        MarkUnavailable(args.Exception?.Message ?? args.FailureType.ToString());
    }

    private void MarkUnavailable(string reason)
    {
        if (Interlocked.Exchange(ref _available, 0) == 1)
        {
            LogUnavailable(_logger, reason, _options.FailurePolicy.ToString());
        }

        StartProbing();
    }

    private void StartProbing()
    {
        if (Interlocked.Exchange(ref _probing, 1) == 0)
        {
            _probe?.Change(TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        }
    }

    private async Task ProbeAsync()
    {
        try
        {
            await _multiplexer!.GetDatabase().PingAsync().ConfigureAwait(false);
            Volatile.Write(ref _probing, 0);
            if (Interlocked.Exchange(ref _available, 1) == 0)
            {
                LogRestored(_logger);
                Restored?.Invoke();
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            _probe?.Change(ProbeInterval, Timeout.InfiniteTimeSpan);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _probe?.Dispose();
        if (_multiplexer is not null)
        {
            await _multiplexer.DisposeAsync().ConfigureAwait(false);
        }
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Redis connected at {Endpoints}: keys, limits and usage are shared by every replica")]
    private static partial void LogConnected(ILogger logger, string endpoints);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Error, Message = "Redis at {Endpoints} is unreachable at start-up; serving degraded ({Policy}) until it answers")]
    private static partial void LogStartingDegraded(ILogger logger, string endpoints, string policy);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Error, Message = "Redis became unreachable ({Reason}); serving degraded ({Policy}) until it answers")]
    private static partial void LogUnavailable(ILogger logger, string reason, string policy);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "Redis is reachable again: limits and usage are shared again")]
    private static partial void LogRestored(ILogger logger);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Error, Message = "A Redis command was refused: {Error}")]
    private static partial void LogCommandError(ILogger logger, string error);
}
