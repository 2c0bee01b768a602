using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ModelGateway.State.Redis;

/// <summary>
/// The shared Redis connection and a verdict on whether it can be used right now. The gateway
/// starts and serves while Redis is down; after a failure it stops sending commands (no request
/// waits on a dead Redis) and probes until Redis answers again.
/// </summary>
/// <remarks>
/// Waits are bounded here, not by StackExchange.Redis: its timeouts are checked on a one-second
/// heartbeat, so a 250 ms timeout could keep a request waiting well over a second. A command that
/// runs past <c>State:CommandTimeout</c> ends the request's wait, but is not by itself an outage (on a
/// busy host one reply can be late): it starts a probe, and only a probe unanswered for
/// <see cref="StateOptions.OutageConfirmation"/>, or a dropped connection, declares Redis unreachable.
/// </remarks>
internal sealed partial class RedisConnection : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan SlowLogInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan DataLossNotice = TimeSpan.FromMinutes(15);

    /// <summary>Written once per Redis dataset; a replica that finds it gone or changed knows the data went with it.</summary>
    private static readonly RedisKey EpochKey = "mg:state:epoch";

    private readonly StateOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RedisConnection> _logger;
    private ConnectionMultiplexer? _multiplexer;
    private ITimer? _probe;
    private int _available;
    private int _probing;
    private int _verifying;
    private long _lastSlowLog;
    private string? _epoch;
    private DateTimeOffset? _dataLostAt;

    public RedisConnection(IOptions<StateOptions> options, TimeProvider timeProvider, ILogger<RedisConnection> logger, IMeterFactory? meterFactory = null)
    {
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
        Metrics = new StateMetrics(meterFactory, _options);
    }

    /// <summary>True while Redis answers. Read on every request; never blocks.</summary>
    public bool IsAvailable => Volatile.Read(ref _available) == 1 && _multiplexer is not null;

    public IDatabase Database => _multiplexer!.GetDatabase();

    public ISubscriber Subscriber => _multiplexer!.GetSubscriber();

    /// <summary>Caching: the connection itself, shared with the response cache's Redis level; null before start.</summary>
    public IConnectionMultiplexer? Multiplexer => _multiplexer;

    public StateMetrics Metrics { get; }

    public TimeProvider TimeProvider => _timeProvider;

    /// <summary>When this replica last found Redis without the gateway's data, for the health check; null if never.</summary>
    public DateTimeOffset? DataLostRecently => _dataLostAt is { } at && _timeProvider.GetUtcNow() - at < DataLossNotice ? at : null;

    /// <summary>Raised when Redis becomes reachable (again), so queued work can be flushed and subscriptions made.</summary>
    public event Action? Restored;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var configuration = ConfigurationOptions.Parse(_options.Redis!);
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = 2000;

        // The library's own timeout only decides when an abandoned command is failed and when a silent
        // socket is dropped (after four of them): requests stop waiting at CommandTimeout regardless
        // (WaitAsync). Kept longer, a Redis frozen for a few seconds keeps its connection, and the
        // replies of commands sent before the freeze still arrive in order when it resumes.
        var libraryTimeout = (int)Math.Max(2000, _options.CommandTimeout.TotalMilliseconds * 4);
        configuration.SyncTimeout = libraryTimeout;
        configuration.AsyncTimeout = libraryTimeout;

        // Never queue commands while disconnected to send them later: a command is sent now or fails
        // now, so nothing is applied long after the request that sent it has moved on.
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
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
            await CheckEpochAsync().ConfigureAwait(false);
            Restored?.Invoke();
        }
        else
        {
            LogStartingDegraded(_logger, string.Join(", ", configuration.EndPoints), _options.FailurePolicy.ToString());
            StartProbing();
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Waits for a command at most <paramref name="timeout"/> (<c>State:CommandTimeout</c> when null),
    /// then throws <see cref="TimeoutException"/>. The command itself is not cancelled: it may still be
    /// applied by Redis, which is why every write that can time out carries an id that makes a
    /// repeat harmless.
    /// </summary>
    public async Task<T> WaitAsync<T>(Task<T> command, string operation, TimeSpan? timeout = null)
    {
        if (command.IsCompleted)
        {
            return await command.ConfigureAwait(false);
        }

        var limit = timeout ?? _options.CommandTimeout;
        try
        {
            return await command.WaitAsync(limit, _timeProvider).ConfigureAwait(false);
        }
        catch (TimeoutException ex) when (ex is not RedisTimeoutException)
        {
            Metrics.TimedOut(operation);

            // Its outcome no longer matters to anyone; observe it so a later fault is not reported as unobserved.
            _ = command.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            throw new TimeoutException($"Redis did not answer {operation} within {limit.TotalMilliseconds:0} ms.");
        }
    }

    /// <summary>
    /// Called by whoever saw a Redis command fail or run late. A dropped connection is an outage at once;
    /// anything else starts a probe, and Redis is declared unreachable only if that goes unanswered too.
    /// </summary>
    public void ReportFailure(Exception exception)
    {
        if (exception is RedisServerException server && !IsOutage(server.Message))
        {
            // Redis answered, with an error: a bug to fix, not an outage to ride out.
            LogCommandError(_logger, server.Message);
            return;
        }

        if (_multiplexer is { IsConnected: false })
        {
            MarkUnavailable(exception.Message);
            return;
        }

        if (IsAvailable && Interlocked.Exchange(ref _verifying, 1) == 0)
        {
            // Off the reporting request's path: it has waited enough.
            ThreadPool.UnsafeQueueUserWorkItem(static state => _ = state.Connection.VerifyAsync(state.Reason), (Connection: this, Reason: exception.Message), preferLocal: false);
        }
    }

    private static bool IsOutage(string message)
        => message.StartsWith("LOADING", StringComparison.Ordinal) || message.StartsWith("MASTERDOWN", StringComparison.Ordinal)
           || message.StartsWith("READONLY", StringComparison.Ordinal) || message.StartsWith("CLUSTERDOWN", StringComparison.Ordinal)
           || message.StartsWith("TRYAGAIN", StringComparison.Ordinal) || message.StartsWith("BUSY", StringComparison.Ordinal);

    // One late or failed command: is Redis there? The probe queues behind whatever is outstanding on the
    // connection, so it answers late when Redis (or this host) is slow, and not at all when Redis is gone.
    private async Task VerifyAsync(string reason)
    {
        try
        {
            await WaitAsync(Database.PingAsync(), "probe", _options.OutageConfirmation).ConfigureAwait(false);
            var now = _timeProvider.GetTimestamp();
            var last = Volatile.Read(ref _lastSlowLog);
            if (last == 0 || _timeProvider.GetElapsedTime(last, now) > SlowLogInterval)
            {
                Volatile.Write(ref _lastSlowLog, now);
                LogSlowButAnswering(_logger, reason, _options.CommandTimeout.TotalMilliseconds);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            MarkUnavailable($"{reason}; a probe then got no answer within {_options.OutageConfirmation.TotalMilliseconds:0} ms");
        }
        finally
        {
            Volatile.Write(ref _verifying, 0);
        }
    }

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
            await WaitAsync(_multiplexer!.GetDatabase().PingAsync(), "probe", _options.OutageConfirmation).ConfigureAwait(false);
            Volatile.Write(ref _probing, 0);
            if (Interlocked.Exchange(ref _available, 1) == 0)
            {
                LogRestored(_logger);
                await CheckEpochAsync().ConfigureAwait(false);
                Restored?.Invoke();
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            _probe?.Change(ProbeInterval, Timeout.InfiniteTimeSpan);
        }
    }

    // Redis that comes back empty (restarted without persistence, failed over to a replica that had not
    // caught up, restored from an older backup) has lost keys, spend and usage. Nothing in the data says
    // so, so each dataset carries an epoch: a replica that saw one and now finds none, or another, says so
    // loudly instead of quietly answering 401 to every key.
    private async Task CheckEpochAsync()
    {
        try
        {
            var database = Database;
            var epoch = (string?)await WaitAsync(database.StringGetAsync(EpochKey), "epoch", _options.OutageConfirmation).ConfigureAwait(false);
            if (epoch is null)
            {
                await WaitAsync(database.StringSetAsync(EpochKey, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)), when: When.NotExists), "epoch", _options.OutageConfirmation).ConfigureAwait(false);
                epoch = (string?)await WaitAsync(database.StringGetAsync(EpochKey), "epoch", _options.OutageConfirmation).ConfigureAwait(false);
            }

            var previous = _epoch;
            _epoch = epoch;
            if (previous is not null && epoch != previous)
            {
                _dataLostAt = _timeProvider.GetUtcNow();
                Metrics.DataLost();
                LogDataLost(_logger);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Checked again on the next reconnect.
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

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "Redis answered later than State:CommandTimeout ({TimeoutMs} ms): {Reason}. It still answers, so it stays in use; requests that waited past the timeout were answered by the failure policy")]
    private static partial void LogSlowButAnswering(ILogger logger, string reason, double timeoutMs);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Critical, Message = "Redis came back without the gateway's data (restarted without persistence, failed over to a replica that had not caught up, or restored from a backup): virtual keys, spend and usage written before are gone, and keys not cached here are refused as unknown. Restore Redis from its append-only file or a backup, and see docs/keys-and-limits.md#persistence-and-recovery")]
    private static partial void LogDataLost(ILogger logger);
}
