using ModelGateway.Configuration;
using ModelGateway.State.Redis;
using StackExchange.Redis;

namespace ModelGateway.Resilience;

/// <summary>
/// With Redis state, a health probe that finds a deployment serving again closes its circuit on every replica, not
/// only on the one that sent it: the probe's answer is published on <c>mg:circuit:recovered</c>, and each other
/// replica treats it as a passed probe of its own. With N replicas the first of N probes brings the whole fleet back
/// (a recovered deployment serves again within about interval ÷ N instead of a whole interval), while a deployment
/// that stays down still costs each replica at most one probe per interval. Off the request path; a message lost
/// while Redis is away only means that replica waits for its own probe.
/// </summary>
internal sealed partial class RecoverySharing : IHostedService
{
    private static readonly RedisChannel Topic = RedisChannel.Literal("mg:circuit:recovered");

    private readonly string _origin = Guid.NewGuid().ToString("N");
    private readonly RedisConnection _redis;
    private readonly RoutingConfigManager _config;
    private readonly ILogger<RecoverySharing> _logger;
    private readonly RedisChannelSubscription _subscription;

    public RecoverySharing(RedisConnection redis, RoutingConfigManager config, ILogger<RecoverySharing> logger)
    {
        _redis = redis;
        _config = config;
        _logger = logger;
        _subscription = new RedisChannelSubscription(redis, Topic, Receive);
    }

    public Task StartAsync(CancellationToken cancellationToken) => _subscription.StartAsync();

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Tells the other replicas that a probe found <paramref name="deployment"/> serving. Never waits.</summary>
    public void Publish(string deployment)
    {
        if (!_redis.IsAvailable)
        {
            return;
        }

        try
        {
            _ = _redis.Subscriber.PublishAsync(Topic, _origin + " " + deployment, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
        {
            _redis.ReportFailure(ex);
        }
    }


    // "origin deployment": a deployment name has no spaces (the routing file's name rule).
    private void Receive(RedisValue value)
    {
        var message = (string?)value;
        if (message is null || message.StartsWith(_origin, StringComparison.Ordinal) || !_config.IsLoaded)
        {
            return;
        }

        var name = message[(message.IndexOf(' ', StringComparison.Ordinal) + 1)..];
        foreach (var deployment in _config.Current.DeploymentList)
        {
            if (string.Equals(deployment.Name, name, StringComparison.Ordinal) && deployment.State.Circuit.Status != CircuitStatus.Closed)
            {
                LogRecovered(_logger, name);
                deployment.State.Circuit.ProbeCompleted(healthy: true);
            }
        }
    }

    [LoggerMessage(EventId = 3012, Level = LogLevel.Information, Message = "Another replica's health probe found {Deployment} serving again: its circuit closes here too")]
    private static partial void LogRecovered(ILogger logger, string deployment);
}
