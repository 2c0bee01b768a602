using System.Collections.Concurrent;
using System.Globalization;
using ModelGateway.Configuration;
using ModelGateway.State.Redis;
using StackExchange.Redis;

namespace ModelGateway.Routing.Signals;

/// <summary>
/// Makes <c>capacity</c> a limit for the whole fleet when replicas share Redis: each attempt on a deployment
/// with a capacity holds a lease in the sorted set <c>{mg:cap:name}</c> (score = when it expires), taken
/// atomically only while fewer than <c>capacity</c> live leases exist, and removed when the attempt ends.
/// A crashed replica's leases age out after the route's total timeout. Without Redis, or when Redis does
/// not answer, the per-replica in-flight count the router already checks is the limit: the request is
/// never failed for want of Redis.
/// </summary>
internal sealed partial class FleetCapacity(IServiceProvider services, ILogger<FleetCapacity> logger)
{
    // ZREMRANGEBYSCORE the expired, then ZADD only below capacity; the key lives as long as its newest lease.
    private static readonly State.Redis.RedisScript Lease = new(LeaseScript);

    private const string LeaseScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
          return 0
        end
        redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return 1
        """;

    private readonly RedisConnection? _redis = services.GetService<RedisConnection>();
    private readonly string _replica = Guid.NewGuid().ToString("N")[..12] + ":";
    private long _next;

    public static RedisKey Key(string deployment) => "{mg:cap:" + deployment + "}";

    /// <summary>
    /// Takes a fleet-wide slot for one attempt. False only when Redis answered that the deployment is full;
    /// true when it has no capacity, when state is in memory, and when Redis fails (local limit applies).
    /// </summary>
    public async ValueTask<bool> TryLeaseAsync(Deployment deployment, TimeSpan lease, CancellationToken cancellationToken)
    {
        if (deployment.Capacity is not { } capacity || _redis is not { IsAvailable: true } redis)
        {
            return true;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var key = Key(deployment.Name);
        RedisValue member = _replica + Interlocked.Increment(ref _next).ToString(CultureInfo.InvariantCulture);
        try
        {
            var db = redis.Database;
            var result = await redis.WaitAsync(Lease.EvaluateAsync(db, [key], [capacity, (long)Math.Max(1000, lease.TotalMilliseconds), member]), "capacity lease").ConfigureAwait(false);
            if ((long)result != 1)
            {
                return false;
            }

            deployment.State.FleetLeases.Hold(db, key, member);
            return true;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            redis.ReportFailure(ex);
            LogFallback(logger, deployment.Name, ex.Message);
            return true;
        }
    }

    /// <summary>Gives back a lease whose attempt never started (the circuit refused it).</summary>
    public static void ReleaseUnused(Deployment deployment) => deployment.State.FleetLeases.ReleaseOne();

    [LoggerMessage(EventId = 2603, Level = LogLevel.Warning, Message = "Fleet-wide capacity of {Deployment} could not be checked in Redis ({Reason}); the per-replica limit applies")]
    private static partial void LogFallback(ILogger logger, string deployment, string reason);
}

/// <summary>
/// The fleet-wide capacity leases this replica holds on one deployment. Any one of them may be given back
/// when an attempt ends: they are interchangeable, and the oldest goes first.
/// </summary>
internal sealed class FleetLeases
{
    private readonly ConcurrentQueue<(IDatabase Db, RedisKey Key, RedisValue Member)> _held = new();

    public int Count => _held.Count;

    public void Hold(IDatabase db, RedisKey key, RedisValue member) => _held.Enqueue((db, key, member));

    /// <summary>Called as an attempt ends; nothing to do (and no allocation) for deployments without leases.</summary>
    public void ReleaseOne()
    {
        if (_held.IsEmpty || !_held.TryDequeue(out var lease))
        {
            return;
        }

        try
        {
            // Fire and forget: if it is lost, the lease ages out on its own.
            _ = lease.Db.SortedSetRemoveAsync(lease.Key, lease.Member, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
        {
            // The connection is gone; the lease expires.
        }
    }
}
