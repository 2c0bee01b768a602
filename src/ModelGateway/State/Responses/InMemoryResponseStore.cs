using Microsoft.Extensions.Options;

namespace ModelGateway.State.Responses;

/// <summary>
/// Stored responses in this process: for a single replica. Entries expire after
/// <c>Responses:StoreTtl</c>, and the oldest go first once they take more than
/// <c>Responses:MemoryLimitBytes</c>.
/// </summary>
internal sealed class InMemoryResponseStore(IOptions<ResponseStoreOptions> options, TimeProvider timeProvider) : IResponseStore
{
    private readonly ResponseStoreOptions _options = options.Value;
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Scope, string Id), Entry> _entries = [];
    private readonly LinkedList<(string Scope, string Id)> _order = new();
    private long _bytes;

    public ValueTask SaveAsync(string scope, StoredResponse response, CancellationToken cancellationToken)
    {
        var size = response.Context.Length + response.Response.Length + 256;
        var expires = timeProvider.GetUtcNow() + _options.StoreTtl;
        lock (_gate)
        {
            Remove((scope, response.Id));
            var node = _order.AddLast((scope, response.Id));
            _entries[(scope, response.Id)] = new Entry(response, expires, size, node);
            _bytes += size;
            while (_bytes > _options.MemoryLimitBytes && _order.First is { } oldest && oldest != node)
            {
                Remove(oldest.Value);
            }
        }

        return default;
    }

    public ValueTask<StoredResponse?> GetAsync(string scope, string id, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_entries.TryGetValue((scope, id), out var entry))
            {
                return new((StoredResponse?)null);
            }

            if (entry.ExpiresAt <= timeProvider.GetUtcNow())
            {
                Remove((scope, id));
                return new((StoredResponse?)null);
            }

            return new(entry.Response);
        }
    }

    public ValueTask<bool> DeleteAsync(string scope, string id, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return new(Remove((scope, id)));
        }
    }

    private bool Remove((string Scope, string Id) key)
    {
        if (!_entries.Remove(key, out var entry))
        {
            return false;
        }

        _order.Remove(entry.Node);
        _bytes -= entry.Size;
        return true;
    }

    private sealed record Entry(StoredResponse Response, DateTimeOffset ExpiresAt, long Size, LinkedListNode<(string Scope, string Id)> Node);
}
