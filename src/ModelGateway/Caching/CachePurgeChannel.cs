using System.Security.Cryptography;
using Microsoft.Extensions.Caching.Hybrid;
using ModelGateway.Configuration;
using ModelGateway.State.Redis;
using StackExchange.Redis;

namespace ModelGateway.Caching;

/// <summary>
/// Carries cache purges to every replica. A purge is applied here and, with state in Redis, published on
/// <c>mg:cache:purge</c>; every replica applies what the others publish to its own in-process level.
/// This is needed because HybridCache keeps a replica's own entries in process, and remembers the tag
/// invalidations it has read from Redis: without the message, another replica would keep serving an
/// entry from its memory (or trust a stale invalidation time) after an admin purged it elsewhere.
/// A routing-file edit that changes a route's targets or cache settings purges that route the same way,
/// so its old entries leave memory on every replica rather than waiting for their TTL.
/// </summary>
internal sealed partial class CachePurgeChannel : IHostedService
{
    /// <summary>The Redis pub/sub channel purges travel on.</summary>
    public static readonly RedisChannel Channel = RedisChannel.Literal("mg:cache:purge");

    private const char Separator = '\u001f';

    private readonly HybridCache _cache;
    private readonly RoutingConfigManager _config;
    private readonly RedisConnection? _redis;
    private readonly ILogger<CachePurgeChannel> _logger;

    // Messages this replica published come back to it: the id tells them apart.
    private readonly string _replicaId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
    private Dictionary<string, string> _generations = new(StringComparer.Ordinal);

    public CachePurgeChannel(HybridCache cache, RoutingConfigManager config, ILogger<CachePurgeChannel> logger, RedisConnection? redis = null)
    {
        _cache = cache;
        _config = config;
        _logger = logger;
        _redis = redis;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_config.IsLoaded)
        {
            _generations = Generations(_config.Current);
        }

        _config.Changed += OnCatalogChanged;
        if (_redis is not null)
        {
            await new RedisChannelSubscription(_redis, Channel, OnMessage).StartAsync().ConfigureAwait(false);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _config.Changed -= OnCatalogChanged;
        return Task.CompletedTask;
    }

    /// <summary>Purges here and on every other replica: a route, an owner, both, or everything (both null).</summary>
    public async ValueTask PurgeAsync(string? route, string? owner, CancellationToken cancellationToken)
    {
        await ApplyAsync(route, owner, cancellationToken).ConfigureAwait(false);
        await PublishAsync(route, owner).ConfigureAwait(false);
    }

    /// <summary>Removes the matching entries from this replica's levels.</summary>
    private ValueTask ApplyAsync(string? route, string? owner, CancellationToken cancellationToken)
    {
        if (route is null && owner is null)
        {
            return _cache.RemoveByTagAsync("*", cancellationToken);
        }

        // Tags are removed as a union: a route and an owner together have a tag of their own.
        var tag = route is null ? CacheKey.OwnerTag(owner!) : owner is null ? CacheKey.RouteTag(route) : CacheKey.RouteOwnerTag(route, owner);
        return _cache.RemoveByTagAsync(tag, cancellationToken);
    }

    private async ValueTask PublishAsync(string? route, string? owner)
    {
        if (_redis is not { IsAvailable: true })
        {
            // Without Redis there is one replica; while Redis is down, the others' memory expires by TTL.
            return;
        }

        try
        {
            var message = string.Join(Separator, _replicaId, route ?? string.Empty, owner ?? string.Empty);
            await _redis.WaitAsync(_redis.Subscriber.PublishAsync(Channel, message), "cache purge").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _redis.ReportFailure(ex);
            LogPublishFailed(_logger, ex);
        }
    }

    private void OnMessage(RedisValue message) => _ = ApplyPublishedAsync(message);

    private async Task ApplyPublishedAsync(RedisValue message)
    {
        var parts = ((string?)message ?? string.Empty).Split(Separator);
        if (parts.Length != 3 || parts[0] == _replicaId)
        {
            return;
        }

        var route = parts[1].Length == 0 ? null : parts[1];
        var owner = parts[2].Length == 0 ? null : parts[2];
        try
        {
            await ApplyAsync(route, owner, CancellationToken.None).ConfigureAwait(false);
            LogApplied(_logger, route ?? "*", owner ?? "*");
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogApplyFailed(_logger, ex);
        }
    }

    // A route whose targets or cache settings changed (its generation), that lost its cache, or that is gone is purged.
    private void OnCatalogChanged(GatewayCatalog catalog)
    {
        var next = Generations(catalog);
        var previous = Interlocked.Exchange(ref _generations, next);
        foreach (var (route, generation) in previous)
        {
            if (!next.TryGetValue(route, out var now) || now != generation)
            {
                _ = PurgeRouteAsync(route);
            }
        }
    }

    private async Task PurgeRouteAsync(string route)
    {
        try
        {
            await PurgeAsync(route, owner: null, CancellationToken.None).ConfigureAwait(false);
            LogRouteChanged(_logger, route);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogApplyFailed(_logger, ex);
        }
    }

    private static Dictionary<string, string> Generations(GatewayCatalog catalog)
    {
        var generations = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, route) in catalog.Routes)
        {
            if (route.Cache is { } settings)
            {
                generations[name] = settings.Generation;
            }
        }

        return generations;
    }

    [LoggerMessage(EventId = 2604, Level = LogLevel.Information, Message = "Response cache purged by another replica: route {Route}, owner {Owner}")]
    private static partial void LogApplied(ILogger logger, string route, string owner);

    [LoggerMessage(EventId = 2605, Level = LogLevel.Information, Message = "Response cache of route {Route} purged: the routing file changed its targets or cache settings")]
    private static partial void LogRouteChanged(ILogger logger, string route);

    [LoggerMessage(EventId = 2606, Level = LogLevel.Warning, Message = "A cache purge could not be published to the other replicas; their in-process entries expire by TTL")]
    private static partial void LogPublishFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 2607, Level = LogLevel.Warning, Message = "A cache purge could not be applied")]
    private static partial void LogApplyFailed(ILogger logger, Exception exception);
}
