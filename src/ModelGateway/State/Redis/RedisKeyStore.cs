using System.Text.Json;
using StackExchange.Redis;

namespace ModelGateway.State.Redis;

/// <summary>
/// Virtual keys in Redis: <c>mg:key:h:HASH</c> holds the record, <c>mg:key:id:ID</c> points to the hash,
/// <c>mg:keys</c> lists the ids. Every change is published on <c>mg:keys:changed</c> so each replica drops
/// its cached copy at once.
/// </summary>
internal sealed class RedisKeyStore : IKeyStore
{
    private static readonly RedisChannel ChangedChannel = RedisChannel.Literal("mg:keys:changed");
    private readonly RedisConnection _redis;

    public RedisKeyStore(RedisConnection redis)
    {
        _redis = redis;
        // Changes made on other replicas; until the subscription gets through, cached keys expire by time.
        _ = new RedisChannelSubscription(redis, ChangedChannel, hash => Changed?.Invoke(hash!)).StartAsync();
    }

    public event Action<string>? Changed;

    public async ValueTask<VirtualKey?> FindByHashAsync(string hash, CancellationToken cancellationToken)
    {
        // On the request path (a key not in this replica's cache): bounded by State:CommandTimeout.
        if (!_redis.IsAvailable)
        {
            throw new KeyStoreUnavailableException("Redis is unreachable");
        }

        var started = _redis.TimeProvider.GetTimestamp();
        RedisValue json;
        try
        {
            json = await _redis.WaitAsync(_redis.Database.StringGetAsync(HashKey(hash)), "key_lookup").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _redis.Metrics.Waited("key_lookup", _redis.TimeProvider.GetElapsedTime(started));
            _redis.ReportFailure(ex);
            throw new KeyStoreUnavailableException("Redis is unreachable", ex);
        }

        _redis.Metrics.Waited("key_lookup", _redis.TimeProvider.GetElapsedTime(started));
        return Read(json);
    }

    public async ValueTask<VirtualKey?> GetAsync(string id, CancellationToken cancellationToken)
    {
        var hash = await RunAsync(db => db.StringGetAsync(IdKey(id))).ConfigureAwait(false);
        return hash.IsNull ? null : await FindByHashAsync(hash!, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<VirtualKey>> ListAsync(CancellationToken cancellationToken)
    {
        var ids = await RunAsync(db => db.SetMembersAsync("mg:keys")).ConfigureAwait(false);
        var keys = new List<VirtualKey>(ids.Length);
        foreach (var id in ids)
        {
            if (await GetAsync(id!, cancellationToken).ConfigureAwait(false) is { } key)
            {
                keys.Add(key);
            }
        }

        keys.Sort(static (a, b) => a.CreatedAt.CompareTo(b.CreatedAt));
        return keys;
    }

    public async ValueTask SaveAsync(VirtualKey key, string hash, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(new StoredKey { Hash = hash, Key = key }, StoredKeyJsonContext.Default.StoredKey);
        await RunAsync(async db =>
        {
            await db.StringSetAsync(HashKey(hash), json).ConfigureAwait(false);
            await db.StringSetAsync(IdKey(key.Id), hash).ConfigureAwait(false);
            await db.SetAddAsync("mg:keys", key.Id).ConfigureAwait(false);
            await _redis.Subscriber.PublishAsync(ChangedChannel, hash).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
        Changed?.Invoke(hash);
    }


    private async Task<T> RunAsync<T>(Func<IDatabase, Task<T>> command)
    {
        if (!_redis.IsAvailable)
        {
            throw new KeyStoreUnavailableException("Redis is unreachable");
        }

        try
        {
            return await command(_redis.Database).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _redis.ReportFailure(ex);
            throw new KeyStoreUnavailableException("Redis is unreachable", ex);
        }
    }

    private static VirtualKey? Read(RedisValue json)
    {
        if (json.IsNullOrEmpty)
        {
            return null;
        }

        var stored = JsonSerializer.Deserialize((byte[])json!, StoredKeyJsonContext.Default.StoredKey)!;
        stored.Key.Hash = stored.Hash;
        return stored.Key;
    }

    private static RedisKey HashKey(string hash) => "mg:key:h:" + hash;

    private static RedisKey IdKey(string id) => "mg:key:id:" + id;

}
