using System.IO.Hashing;
using System.Text;
using Microsoft.Extensions.Caching.Memory;
using ModelGateway.Configuration;

namespace ModelGateway.Routing.Affinity;

/// <summary>A route's compiled prefix-affinity settings.</summary>
/// <param name="MinPrefixTokens">Shortest prefix (estimated tokens) worth remembering.</param>
/// <param name="Ttl">How long a prefix is remembered after it was last served.</param>
/// <param name="Weight">Scales the remembered deployment's bonus.</param>
/// <param name="Seed">Hash seed from the route's name: the same prompt on two routes is two prefixes.</param>
internal sealed record AffinitySettings(int MinPrefixTokens, TimeSpan Ttl, double Weight, ulong Seed)
{
    public const int DefaultMinPrefixTokens = 1024;
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan MaxTtl = TimeSpan.FromHours(24);

    /// <summary>Each prefix counts 1 toward the store's size limit; unread for a TTL, the cache drops it (the store checks expiry itself too).</summary>
    public MemoryCacheEntryOptions EntryOptions { get; } = new() { Size = 1, SlidingExpiration = Ttl };

    /// <summary>Compiles a route's <c>affinity</c> block, adding every problem to <paramref name="errors"/>; null when affinity is off.</summary>
    public static AffinitySettings? Parse(AffinityDocument? doc, string route, string path, List<ConfigError> errors)
    {
        if (doc is null || doc.Prefix == false)
        {
            return null;
        }

        var minTokens = doc.MinPrefixTokens ?? DefaultMinPrefixTokens;
        if (minTokens is < 1 or > 1_000_000)
        {
            errors.Add(new(path + ".minPrefixTokens", "must be between 1 and 1000000"));
            minTokens = DefaultMinPrefixTokens;
        }

        var ttl = DefaultTtl;
        if (doc.Ttl is not null && (!Durations.TryParse(doc.Ttl, out ttl) || ttl < TimeSpan.FromSeconds(1) || ttl > MaxTtl))
        {
            errors.Add(new(path + ".ttl", "must be a duration between 1s and 24h (e.g. 5m, 1h)"));
            ttl = DefaultTtl;
        }

        var weight = doc.Weight ?? 1.0;
        if (!double.IsFinite(weight) || weight is < 0 or > 100)
        {
            errors.Add(new(path + ".weight", "must be between 0 and 100"));
            weight = 1.0;
        }

        return new AffinitySettings(minTokens, ttl, weight, XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(route)));
    }
}
