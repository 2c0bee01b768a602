using ModelGateway.Configuration;
using ModelGateway.Wire;

namespace ModelGateway.State;

/// <summary>
/// Holds every limit the gateway enforces: per key (RPM, TPM, concurrent requests, budgets) and per
/// deployment (the provider's own RPM/TPM). In memory for one replica, in Redis for many; both
/// implementations give the same answers for the same traffic.
/// </summary>
internal interface IRateLimiter
{
    /// <summary>Admits a request for a key, reserving its estimated tokens and cost. One round trip.</summary>
    ValueTask<KeyAdmission> AdmitAsync(CallerIdentity caller, string requestId, long estimatedTokens, double estimatedCost, CancellationToken cancellationToken);

    /// <summary>Settles the reservation to what the request really used and frees its concurrency slot.</summary>
    ValueTask SettleAsync(CallerIdentity caller, KeyAdmission admission, long actualTokens, double actualCost);

    /// <summary>Takes one request and its estimated tokens from a deployment's provider limits.</summary>
    ValueTask<DeploymentAdmission> TryAcquireDeploymentAsync(Deployment deployment, long estimatedTokens, CancellationToken cancellationToken);

    /// <summary>Corrects a deployment's token count once the real usage is known.</summary>
    ValueTask SettleDeploymentAsync(Deployment deployment, DeploymentAdmission admission, long actualTokens);
}

/// <summary>The answer to a key's admission, with what OpenAI's <c>x-ratelimit-*</c> headers report.</summary>
internal sealed class KeyAdmission
{
    public static readonly KeyAdmission Unlimited = new() { Allowed = true };

    public required bool Allowed { get; init; }

    public ApiError? Rejection { get; init; }

    /// <summary>Which limit refused: requests, tokens, concurrency, budget_daily, budget_monthly or store_unavailable.</summary>
    public string? RejectionReason { get; init; }

    public long? RequestLimit { get; init; }
    public long RequestsRemaining { get; init; }
    public TimeSpan RequestsReset { get; init; }
    public long? TokenLimit { get; init; }
    public long TokensRemaining { get; init; }
    public TimeSpan TokensReset { get; init; }

    /// <summary>What was reserved, so settling can correct it.</summary>
    public long ReservedTokens { get; init; }
    public double ReservedCost { get; init; }
    public long WindowSecond { get; init; }
    public bool HoldsConcurrencySlot { get; init; }

    /// <summary>
    /// The id this admission was booked under in Redis: made by the limiter, unique across replicas
    /// and restarts (never the client's request id, which clients may repeat). Settling it twice has
    /// the effect of settling it once.
    /// </summary>
    public string? LeaseId { get; init; }

    /// <summary>
    /// The key was at half its concurrency limit or more when this request was admitted: its slot is
    /// released the moment it ends, rather than with the key's next admission.
    /// </summary>
    public bool NearConcurrencyLimit { get; init; }

    /// <summary>The budget periods (yyyyMMdd, yyyyMM) the reservation was booked in, by the store's clock.</summary>
    public string? Day { get; init; }
    public string? Month { get; init; }

    /// <summary>True when a replica-local limiter answered because the shared store was unreachable.</summary>
    public bool Local { get; init; }

    /// <summary>
    /// The shared store did not answer this admission in time, so it may or may not have been applied
    /// there: the settle reconciles it either way, by <see cref="LeaseId"/>.
    /// </summary>
    public bool Uncertain { get; init; }
}

/// <summary>The answer to a deployment's provider-limit check.</summary>
internal readonly record struct DeploymentAdmission(bool Allowed, TimeSpan RetryAfter, long ReservedTokens, long WindowSecond, bool Local = true)
{
    public static readonly DeploymentAdmission Unlimited = new(true, TimeSpan.Zero, 0, 0);
}
