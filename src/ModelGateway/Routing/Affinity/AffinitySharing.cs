using System.Globalization;
using System.Text;
using System.Threading.Channels;
using ModelGateway.State.Redis;
using StackExchange.Redis;

namespace ModelGateway.Routing.Affinity;

/// <summary>
/// With Redis state, replicas tell each other which deployment served which prefix: what one replica
/// remembers is batched off the request path (at most every <see cref="FlushInterval"/>) and published on
/// <c>mg:affinity</c>; every other replica writes what it hears into its own store. Lookups stay local, so
/// routing never waits on Redis; a message lost while Redis is away costs a cache miss, nothing else.
/// </summary>
internal sealed partial class AffinitySharing : BackgroundService
{
    public static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(50);
    private const int MaxBatch = 512;
    private static readonly RedisChannel Topic = RedisChannel.Literal("mg:affinity");

    // Bounded: under a burst the oldest news goes first, and remembering never blocks a request.
    private readonly Channel<Shared> _outbox = Channel.CreateBounded<Shared>(new BoundedChannelOptions(16_384)
    {
        FullMode = BoundedChannelFullMode.DropOldest,
        SingleReader = true,
    });

    private readonly string _origin = Guid.NewGuid().ToString("N");
    private readonly RedisConnection _redis;
    private readonly PrefixAffinity _affinity;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<AffinitySharing> _logger;
    private readonly RedisChannelSubscription _subscription;

    public AffinitySharing(RedisConnection redis, PrefixAffinity affinity, TimeProvider timeProvider, ILogger<AffinitySharing> logger)
    {
        _redis = redis;
        _affinity = affinity;
        _timeProvider = timeProvider;
        _logger = logger;
        affinity.Sharing = this;
        _subscription = new RedisChannelSubscription(redis, Topic, Receive);
    }

    /// <summary>Queues what this replica just remembered, for the next batch. Never waits.</summary>
    public void Publish(PrefixSpan[] spans, string deployment, TimeSpan ttl)
    {
        foreach (var span in spans)
        {
            _outbox.Writer.TryWrite(new Shared(span.Hash, deployment, ttl));
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await _subscription.StartAsync().ConfigureAwait(false);
        var batch = new StringBuilder();
        var reader = _outbox.Reader;
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
            {
                // Gather for a moment, so a busy replica sends one message per interval rather than one per request.
                await Task.Delay(FlushInterval, _timeProvider, stoppingToken).ConfigureAwait(false);
                batch.Clear().Append(_origin);
                var count = 0;
                while (count < MaxBatch && reader.TryRead(out var item))
                {
                    batch.Append('\n').Append(item.Hash.ToString("x16", CultureInfo.InvariantCulture))
                        .Append(' ').Append((long)item.Ttl.TotalMilliseconds).Append(' ').Append(item.Deployment);
                    count++;
                }

                await SendAsync(batch.ToString()).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: what is still queued only warmed caches.
        }
    }

    private async Task SendAsync(string message)
    {
        if (!_redis.IsAvailable)
        {
            return;
        }

        try
        {
            await _redis.Subscriber.PublishAsync(Topic, message).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogPublishFailed(_logger, ex.Message);
            _redis.ReportFailure(ex);
        }
    }


    // "origin\nhash ttlMs deployment\n...": a deployment name has no spaces or newlines (the routing file's name rule).
    private void Receive(RedisValue value)
    {
        var message = (string?)value;
        if (message is null || message.StartsWith(_origin, StringComparison.Ordinal))
        {
            return;
        }

        foreach (var line in message.AsSpan().Split('\n'))
        {
            var text = message.AsSpan()[line];
            var first = text.IndexOf(' ');
            var second = first < 0 ? -1 : text[(first + 1)..].IndexOf(' ');
            if (second < 0
                || !ulong.TryParse(text[..first], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hash)
                || !long.TryParse(text.Slice(first + 1, second), NumberStyles.None, CultureInfo.InvariantCulture, out var ttlMs))
            {
                continue;
            }

            _affinity.Learn(hash, text[(first + second + 2)..].ToString(), TimeSpan.FromMilliseconds(ttlMs));
        }
    }

    [LoggerMessage(EventId = 1801, Level = LogLevel.Debug, Message = "Prefix affinity: publishing to Redis failed ({Reason}); replicas learn on their own until it answers")]
    private static partial void LogPublishFailed(ILogger logger, string reason);

    private readonly record struct Shared(ulong Hash, string Deployment, TimeSpan Ttl);
}
