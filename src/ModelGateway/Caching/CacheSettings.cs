using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ModelGateway.Configuration;

namespace ModelGateway.Caching;

/// <summary>Who may share a cached answer.</summary>
internal enum CacheScope : byte
{
    /// <summary>Only requests made with the same virtual key (the default): tenants never share.</summary>
    Key,

    /// <summary>Every key of the same team.</summary>
    Team,

    /// <summary>Every caller of the route: an admin's explicit choice.</summary>
    Global,
}

/// <summary>A route's compiled response-cache settings.</summary>
/// <param name="Ttl">How long an entry lives.</param>
/// <param name="Scope">Who shares an entry.</param>
/// <param name="MaxEntryBytes">Answers larger than this (serialised) are not stored.</param>
/// <param name="CacheLength">Whether answers cut short by <c>length</c> are stored.</param>
/// <param name="Generation">
/// A hash of the route's targets and cache settings, part of every key: a routing-file edit that changes
/// either makes the route's old entries unreachable (they expire on their own).
/// </param>
internal sealed record CacheSettings(TimeSpan Ttl, CacheScope Scope, int MaxEntryBytes, bool CacheLength, string Generation)
{
    /// <summary>The semantic cache on top of the exact one; null when the route has none.</summary>
    public SemanticSettings? Semantic { get; init; }

    public const int DefaultMaxEntryBytes = 256 * 1024;
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromHours(1);
    public static readonly TimeSpan MaxTtl = TimeSpan.FromDays(30);

    /// <summary>Compiles a route's <c>cache</c> block, adding every problem to <paramref name="errors"/>; null when the cache is off.</summary>
    public static CacheSettings? Parse(CacheDocument? doc, string route, IReadOnlyList<Deployment> targets, IReadOnlyDictionary<string, Deployment> deployments, string path, List<ConfigError> errors)
    {
        if (doc is null || doc.Enabled == false)
        {
            return null;
        }

        var ttl = DefaultTtl;
        if (doc.Ttl is not null)
        {
            if (!Durations.TryParse(doc.Ttl, out ttl) || ttl <= TimeSpan.Zero || ttl > MaxTtl)
            {
                errors.Add(new(path + ".ttl", "must be a duration between 1s and 30 days (e.g. 10m, 1h)"));
                ttl = DefaultTtl;
            }
        }

        var scope = CacheScope.Key;
        switch (doc.Scope)
        {
            case null or "key":
                break;
            case "team":
                scope = CacheScope.Team;
                break;
            case "global":
                scope = CacheScope.Global;
                break;
            default:
                errors.Add(new(path + ".scope", $"unknown scope '{doc.Scope}': use key, team or global"));
                break;
        }

        var maxBytes = doc.MaxEntryBytes ?? DefaultMaxEntryBytes;
        if (maxBytes is < 256 or > 16 * 1024 * 1024)
        {
            errors.Add(new(path + ".maxEntryBytes", "must be between 256 and 16777216"));
            maxBytes = DefaultMaxEntryBytes;
        }

        var cacheLength = doc.CacheLength ?? false;
        var identity = new StringBuilder(route).Append('|');
        foreach (var target in targets)
        {
            identity.Append(target.Name).Append('=').Append(target.Provider.Name).Append('/').Append(target.UpstreamModel).Append(';');
        }

        identity.Append('|').Append(ttl.Ticks.ToString(CultureInfo.InvariantCulture)).Append('|').Append((int)scope).Append('|').Append(maxBytes).Append('|').Append(cacheLength);
        var semantic = SemanticSettings.Parse(doc.Semantic, deployments, path + ".semantic", errors);
        if (semantic is not null)
        {
            identity.Append('|').Append(semantic.Identity);
        }

        var generation = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity.ToString())).AsSpan(0, 6));
        return new CacheSettings(ttl, scope, maxBytes, cacheLength, generation) { Semantic = semantic };
    }
}

/// <summary>A route's compiled semantic-cache settings.</summary>
/// <param name="Deployment">The embeddings deployment the prompts are embedded with.</param>
/// <param name="Threshold">The cosine similarity at or above which a stored answer is served.</param>
/// <param name="MaxTemperature">Requests asking for a higher temperature (absent counts as 1) are never served semantically.</param>
/// <param name="MaxEntries">How many prompts each replica keeps per route and scope owner; the oldest go first.</param>
internal sealed record SemanticSettings(Deployment Deployment, float Threshold, double MaxTemperature, int MaxEntries)
{
    public const double DefaultThreshold = 0.95;
    public const double DefaultMaxTemperature = 0.5;
    public const int DefaultMaxEntries = 10_000;

    /// <summary>Part of the route's generation: a change of embeddings deployment makes old vectors meaningless.</summary>
    public string Identity => string.Create(CultureInfo.InvariantCulture, $"sem={Deployment.Name}/{Deployment.UpstreamModel},{Threshold},{MaxTemperature},{MaxEntries}");

    public static SemanticSettings? Parse(SemanticCacheDocument? doc, IReadOnlyDictionary<string, Deployment> deployments, string path, List<ConfigError> errors)
    {
        if (doc is null)
        {
            return null;
        }

        Deployment? deployment = null;
        if (string.IsNullOrWhiteSpace(doc.Deployment))
        {
            errors.Add(new(path + ".deployment", "name the embeddings deployment that embeds the prompts"));
        }
        else if (!deployments.TryGetValue(doc.Deployment, out deployment))
        {
            errors.Add(new(path + ".deployment", $"unknown deployment '{doc.Deployment}'"));
        }
        else if (!deployment.Has(Capabilities.Embeddings))
        {
            errors.Add(new(path + ".deployment", $"deployment '{doc.Deployment}' does not serve embeddings (add embeddings to its capabilities)"));
            deployment = null;
        }

        var threshold = doc.Threshold ?? DefaultThreshold;
        if (threshold is <= 0 or > 1 || double.IsNaN(threshold))
        {
            errors.Add(new(path + ".threshold", "must be a cosine similarity above 0 and at most 1 (e.g. 0.95)"));
        }

        var maxTemperature = doc.MaxTemperature ?? DefaultMaxTemperature;
        if (maxTemperature is < 0 or > 2 || double.IsNaN(maxTemperature))
        {
            errors.Add(new(path + ".maxTemperature", "must be between 0 and 2"));
        }

        var maxEntries = doc.MaxEntries ?? DefaultMaxEntries;
        if (maxEntries is < 1 or > 1_000_000)
        {
            errors.Add(new(path + ".maxEntries", "must be between 1 and 1000000"));
        }

        return deployment is null ? null : new SemanticSettings(deployment, (float)threshold, maxTemperature, maxEntries);
    }
}
