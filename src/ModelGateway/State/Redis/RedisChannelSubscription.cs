using StackExchange.Redis;

namespace ModelGateway.State.Redis;

/// <summary>
/// A Redis pub/sub subscription kept for as long as the process runs (key changes, cache purges, affinity,
/// recoveries). The multiplexer
/// re-subscribes by itself after a reconnect; a subscription that never got through (Redis down at
/// start) is retried each time Redis comes back.
/// </summary>
internal sealed class RedisChannelSubscription(RedisConnection redis, RedisChannel channel, Action<RedisValue> handler)
{
    private int _subscribed;

    public Task StartAsync()
    {
        redis.Restored += () => _ = SubscribeAsync();
        return SubscribeAsync();
    }

    private async Task SubscribeAsync()
    {
        if (Volatile.Read(ref _subscribed) == 1 || !redis.IsAvailable)
        {
            return;
        }

        try
        {
            await redis.Subscriber.SubscribeAsync(channel, (_, message) => handler(message)).ConfigureAwait(false);
            Volatile.Write(ref _subscribed, 1);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            redis.ReportFailure(ex);
        }
    }
}
