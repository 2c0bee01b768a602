using Microsoft.Extensions.Options;
using ModelGateway.State.Redis;
using StackExchange.Redis;

namespace ModelGateway.State.Responses;

/// <summary>
/// Stored responses in Redis, so a follow-up works on any replica: one string per response under
/// <c>mg:resp:{scope}:{id}</c> (the scope is the calling key's id, so another key's lookup of the same
/// id reads another Redis key and finds nothing), expiring after <c>Responses:StoreTtl</c>. Requests
/// wait on it no longer than <c>State:CommandTimeout</c>.
/// </summary>
internal sealed class RedisResponseStore(RedisConnection redis, IOptions<ResponseStoreOptions> options) : IResponseStore
{
    private readonly TimeSpan _ttl = options.Value.StoreTtl;

    public async ValueTask SaveAsync(string scope, StoredResponse response, CancellationToken cancellationToken)
    {
        var value = response.ToBytes();
        await RunAsync(db => db.StringSetAsync(Key(scope, response.Id), value, _ttl), "response_save").ConfigureAwait(false);
    }

    public async ValueTask<StoredResponse?> GetAsync(string scope, string id, CancellationToken cancellationToken)
    {
        var value = await RunAsync(db => db.StringGetAsync(Key(scope, id)), "response_get").ConfigureAwait(false);
        return value.IsNullOrEmpty ? null : StoredResponse.FromBytes((byte[])value!);
    }

    public async ValueTask<bool> DeleteAsync(string scope, string id, CancellationToken cancellationToken)
        => await RunAsync(db => db.KeyDeleteAsync(Key(scope, id)), "response_delete").ConfigureAwait(false);

    private async Task<T> RunAsync<T>(Func<IDatabase, Task<T>> command, string operation)
    {
        if (!redis.IsAvailable)
        {
            throw new ResponseStoreUnavailableException("Redis is unreachable");
        }

        try
        {
            return await redis.WaitAsync(command(redis.Database), operation).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            redis.ReportFailure(ex);
            throw new ResponseStoreUnavailableException("Redis did not answer", ex);
        }
    }

    // Ids are the gateway's own or OpenAI's (resp_ and hex); the scope is a key id. Neither holds a brace,
    // so keys of one scope never share a Cluster hash slot by accident.
    private static RedisKey Key(string scope, string id) => $"mg:resp:{scope}:{id}";
}
