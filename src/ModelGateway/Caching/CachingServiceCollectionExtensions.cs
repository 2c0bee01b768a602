using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using ModelGateway.State;
using ModelGateway.State.Redis;
using StackExchange.Redis;

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

        if (!string.IsNullOrWhiteSpace(configuration[$"{StateOptions.Section}:{nameof(StateOptions.Redis)}"]))
        {
            services.AddStackExchangeRedisCache(_ => { });
            services.AddOptions<RedisCacheOptions>().Configure<IServiceProvider>(static (options, sp) =>
            {
                var redis = sp.GetRequiredService<RedisConnection>();
                options.ConnectionMultiplexerFactory = () => redis.Multiplexer is { } multiplexer
                    ? Task.FromResult<IConnectionMultiplexer>(multiplexer)
                    : throw new InvalidOperationException("Redis is not connected yet.");
            });
        }

        services.AddSingleton<ResponseCache>();
        return services;
    }
}
