using ModelGateway.Configuration;

namespace ModelGateway.State;

/// <summary>
/// Who is calling: a virtual key's name, team and constraints, or the anonymous caller of a
/// gateway running without keys. Routing reads its constraints; limits and usage are kept per key.
/// </summary>
internal sealed class CallerIdentity
{
    public static readonly CallerIdentity Anonymous = new() { KeyId = null, Name = "anonymous", AllowSloOverride = true };

    /// <summary>The stored key's id (a prefix of its hash); null for anonymous callers.</summary>
    public required string? KeyId { get; init; }

    public required string Name { get; init; }

    public string? Team { get; init; }

    /// <summary>Model-name patterns this key may call (<c>*</c> wildcards); null means any.</summary>
    public string[]? AllowedModels { get; init; }

    public DeploymentTier[]? AllowedTiers { get; init; }

    public string[]? AllowedRegions { get; init; }

    public string[]? RequiredTags { get; init; }

    /// <summary>Whether requests may tighten the route's latency objective with a header.</summary>
    public bool AllowSloOverride { get; init; }

    public int? RpmLimit { get; init; }

    public long? TpmLimit { get; init; }

    public int? MaxParallelRequests { get; init; }

    public double? DailyBudgetUsd { get; init; }

    public double? MonthlyBudgetUsd { get; init; }

    /// <summary>
    /// What this request already waited on the key store (a lookup on a cache miss) before its
    /// admission: the admission then waits at most what is left of <c>State:CommandTimeout</c>.
    /// Zero on the shared, cached identity; set only on a request's own copy.
    /// </summary>
    public TimeSpan StoreWait { get; private set; }

    /// <summary>This caller as one request sees it after waiting <paramref name="waited"/> on the key store.</summary>
    public CallerIdentity WithStoreWait(TimeSpan waited)
    {
        var copy = (CallerIdentity)MemberwiseClone();
        copy.StoreWait = waited;
        return copy;
    }

    public bool HasLimits => RpmLimit is not null || TpmLimit is not null || MaxParallelRequests is not null || DailyBudgetUsd is not null || MonthlyBudgetUsd is not null;

    public bool HasDeploymentConstraints => AllowedTiers is not null || AllowedRegions is not null || RequiredTags is not null;

    public bool MayUseModel(string model)
    {
        if (AllowedModels is null)
        {
            return true;
        }

        foreach (var pattern in AllowedModels)
        {
            if (ModelPattern.Matches(pattern, model))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>Matches model names against key patterns such as <c>gpt-4o*</c> or <c>*</c>.</summary>
internal static class ModelPattern
{
    public static bool Matches(string pattern, string value)
    {
        var star = pattern.IndexOf('*', StringComparison.Ordinal);
        if (star < 0)
        {
            return string.Equals(pattern, value, StringComparison.Ordinal);
        }

        var prefix = pattern.AsSpan(0, star);
        var suffix = pattern.AsSpan(star + 1);
        if (suffix.Contains('*'))
        {
            // Several wildcards: fall back to a simple greedy match.
            return Greedy(pattern, value);
        }

        return value.Length >= prefix.Length + suffix.Length
            && value.AsSpan().StartsWith(prefix, StringComparison.Ordinal)
            && value.AsSpan().EndsWith(suffix, StringComparison.Ordinal);
    }

    private static bool Greedy(string pattern, string value)
    {
        var parts = pattern.Split('*');
        var position = 0;
        for (var i = 0; i < parts.Length; i++)
        {
            var part = parts[i];
            if (part.Length == 0)
            {
                continue;
            }

            var found = value.IndexOf(part, position, StringComparison.Ordinal);
            if (found < 0 || (i == 0 && found != 0))
            {
                return false;
            }

            position = found + part.Length;
        }

        return parts[^1].Length == 0 || value.EndsWith(parts[^1], StringComparison.Ordinal);
    }
}
