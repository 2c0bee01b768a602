using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using ModelGateway.Configuration;

namespace ModelGateway.State;

/// <summary>
/// A virtual API key as stored: who it belongs to, what it may call, its limits and budgets. The
/// secret itself is never stored, only its SHA-256; the secret is shown once, when the key is created.
/// </summary>
public sealed class VirtualKey
{
    public required string Id { get; set; }
    public required string Name { get; set; }
    public string? Team { get; set; }
    public string? Owner { get; set; }

    /// <summary>SHA-256 of the secret, hex. Never returned by the API.</summary>
    [JsonIgnore]
    public string Hash { get; set; } = string.Empty;

    /// <summary>The start and end of the secret (<c>sk-mg-Ab…9xQ</c>) so people can tell keys apart.</summary>
    public required string Hint { get; set; }

    public List<string>? Models { get; set; }
    public int? Rpm { get; set; }
    public long? Tpm { get; set; }
    public int? MaxParallelRequests { get; set; }
    public double? BudgetDailyUsd { get; set; }
    public double? BudgetMonthlyUsd { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    public Dictionary<string, string>? Metadata { get; set; }
    public KeyConstraints? Constraints { get; set; }
    public bool AllowSloOverride { get; set; }
    public required DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }

    /// <summary>The secret, set only on the response that creates the key; never stored.</summary>
    public string? Key { get; set; }

    public bool IsUsable(DateTimeOffset now) => RevokedAt is null && (ExpiresAt is null || ExpiresAt > now);

    /// <summary>The routing and limit view of this key, as requests carry it.</summary>
    internal CallerIdentity ToCaller() => new()
    {
        KeyId = Id,
        Name = Name,
        Team = Team,
        AllowedModels = Models is { Count: > 0 } ? [.. Models] : null,
        AllowedTiers = Constraints?.Tiers is { Count: > 0 } tiers ? [.. tiers.Select(ParseTier)] : null,
        AllowedRegions = Constraints?.Regions is { Count: > 0 } regions ? [.. regions] : null,
        RequiredTags = Constraints?.Tags is { Count: > 0 } tags ? [.. tags] : null,
        AllowSloOverride = AllowSloOverride,
        RpmLimit = Rpm,
        TpmLimit = Tpm,
        MaxParallelRequests = MaxParallelRequests,
        DailyBudgetUsd = BudgetDailyUsd,
        MonthlyBudgetUsd = BudgetMonthlyUsd,
    };

    private static DeploymentTier ParseTier(string tier) => tier switch
    {
        "iaas" => DeploymentTier.Iaas,
        "paas" => DeploymentTier.Paas,
        _ => DeploymentTier.Saas,
    };
}

/// <summary>Which deployments a key may reach, beyond which models.</summary>
public sealed class KeyConstraints
{
    public List<string>? Tiers { get; set; }
    public List<string>? Regions { get; set; }
    public List<string>? Tags { get; set; }
}

/// <summary>The body of <c>POST /admin/keys</c> and <c>PATCH /admin/keys/{id}</c>; absent fields are left as they are.</summary>
public sealed class KeyRequest
{
    public string? Name { get; set; }
    public string? Team { get; set; }
    public string? Owner { get; set; }
    public List<string>? Models { get; set; }
    public int? Rpm { get; set; }
    public long? Tpm { get; set; }
    public int? MaxParallelRequests { get; set; }
    public double? BudgetDailyUsd { get; set; }
    public double? BudgetMonthlyUsd { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    public Dictionary<string, string>? Metadata { get; set; }
    public KeyConstraints? Constraints { get; set; }
    public bool? AllowSloOverride { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(VirtualKey))]
[JsonSerializable(typeof(KeyRequest))]
[JsonSerializable(typeof(List<VirtualKey>))]
internal sealed partial class KeyJsonContext : JsonSerializerContext;

/// <summary>Stored form: the public record plus the secret's hash, which the API never shows.</summary>
internal sealed class StoredKey
{
    public required string Hash { get; set; }
    public required VirtualKey Key { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoredKey))]
internal sealed partial class StoredKeyJsonContext : JsonSerializerContext;

/// <summary>Key secrets: generated from a CSPRNG, stored and compared as SHA-256.</summary>
internal static class KeySecrets
{
    public const string Prefix = "sk-mg-";

    public static string Generate() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(30)).Replace('+', 'A').Replace('/', 'z').TrimEnd('=');

    public static string NewId() => "key_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    public static string Hint(string secret) => secret.Length <= 12 ? "***" : $"{secret[..8]}…{secret[^4..]}";

    /// <summary>Compares secrets without leaking, through timing, how much of them matched.</summary>
    public static bool Equal(string a, string b) => CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));
}

/// <summary>The key store could not be reached; the caller decides what that means (usually 503).</summary>
internal sealed class KeyStoreUnavailableException : Exception
{
    public KeyStoreUnavailableException(string message)
        : base(message)
    {
    }

    public KeyStoreUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>Where virtual keys are kept: in memory for one replica, in Redis for many.</summary>
internal interface IKeyStore
{
    ValueTask<VirtualKey?> FindByHashAsync(string hash, CancellationToken cancellationToken);

    ValueTask<VirtualKey?> GetAsync(string id, CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<VirtualKey>> ListAsync(CancellationToken cancellationToken);

    ValueTask SaveAsync(VirtualKey key, string hash, CancellationToken cancellationToken);

    /// <summary>Raised (on every replica) when a key changes, with the key's hash, so caches drop it at once.</summary>
    event Action<string>? Changed;
}

/// <summary>Keys held in this process: the embedded default.</summary>
internal sealed class InMemoryKeyStore : IKeyStore
{
    private readonly ConcurrentDictionary<string, StoredKey> _byHash = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _hashById = new(StringComparer.Ordinal);

    public event Action<string>? Changed;

    public ValueTask<VirtualKey?> FindByHashAsync(string hash, CancellationToken cancellationToken)
        => new(_byHash.TryGetValue(hash, out var stored) ? Copy(stored) : null);

    public ValueTask<VirtualKey?> GetAsync(string id, CancellationToken cancellationToken)
        => new(_hashById.TryGetValue(id, out var hash) && _byHash.TryGetValue(hash, out var stored) ? Copy(stored) : null);

    public ValueTask<IReadOnlyList<VirtualKey>> ListAsync(CancellationToken cancellationToken)
        => new([.. _byHash.Values.Select(Copy).OrderBy(k => k.CreatedAt)]);

    public ValueTask SaveAsync(VirtualKey key, string hash, CancellationToken cancellationToken)
    {
        _byHash[hash] = new StoredKey { Hash = hash, Key = Copy(new StoredKey { Hash = hash, Key = key }) };
        _hashById[key.Id] = hash;
        Changed?.Invoke(hash);
        return default;
    }

    // Callers get their own copy, as they would from Redis, so editing one never edits the store.
    private static VirtualKey Copy(StoredKey stored)
    {
        var json = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(stored, StoredKeyJsonContext.Default.StoredKey);
        var copy = System.Text.Json.JsonSerializer.Deserialize(json, StoredKeyJsonContext.Default.StoredKey)!;
        copy.Key.Hash = copy.Hash;
        return copy.Key;
    }
}
