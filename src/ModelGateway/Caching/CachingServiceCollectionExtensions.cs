using Microsoft.Extensions.Caching.Hybrid;
using ModelGateway.State;

namespace ModelGateway.Caching;

/// <summary>Registers the response cache.</summary>
internal static class CachingServiceCollectionExtensions
{
    /// <summary>
    /// <see cref="HybridCache"/> in process; with <c>State:Redis</c> set, Redis as its second level over
    /// the gateway's own connection, so every replica reads what any of them stored.
    /// </summary>
    public static IServiceCollection AddResponseCaching(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddHybridCache(options =>
        {
            // Entry sizes are limited per route (cache.maxEntryBytes, at most 16 MB).
            options.MaximumPayloadBytes = 16 * 1024 * 1024;
            options.MaximumKeyLength = 1024;
        });

        var redis = configuration[$"{StateOptions.Section}:{nameof(StateOptions.Redis)}"];
        if (!string.IsNullOrWhiteSpace(redis))
        {
            // The cache gets a connection of its own: RedisCache closes the multiplexer it holds when the host
            // disposes it, and sharing the state store's would cut the usage flush a replica makes on its way out.
            services.AddStackExchangeRedisCache(options => options.Configuration = redis);
        }

        // Purges reach every replica; the channel listens from start-up, before any request asks for the cache.
        services.AddSingleton<CachePurgeChannel>();
        services.AddHostedService(static sp => sp.GetRequiredService<CachePurgeChannel>());
        services.AddSingleton<SemanticCache>();
        services.AddHostedService(static sp => sp.GetRequiredService<SemanticCache>());
        services.AddSingleton<ResponseCache>();
        return services;
    }
}
