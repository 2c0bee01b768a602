using ModelGateway.Wire;

namespace ModelGateway.Canonical;

/// <summary>What an upstream's error means for resilience, whatever the provider's own words for it.</summary>
internal enum UpstreamErrorKind : byte
{
    /// <summary>5xx, 408, "overloaded": the deployment may answer later, another may answer now.</summary>
    ServerError,

    /// <summary>The provider's rate limit or quota: wait <see cref="UpstreamError.RetryAfter"/> or go elsewhere.</summary>
    RateLimited,

    /// <summary>The prompt does not fit this deployment; only a larger context window may help.</summary>
    ContextLength,

    /// <summary>A content policy refused the request; the same model will refuse it again.</summary>
    ContentFilter,

    /// <summary>The gateway's own credential, endpoint or model name was refused: not the client's fault.</summary>
    Misconfigured,

    /// <summary>The request itself is at fault; it goes back to the client.</summary>
    ClientError,

    /// <summary>The answer was not the provider's wire format.</summary>
    BadResponse,
}

/// <summary>
/// An upstream error classified by the adapter that speaks the provider's wire, so resilience never
/// reads a provider's body. <see cref="Error"/> is what the client sees (neutral; each client protocol
/// writes it in its own shape), already scrubbed of anything secret.
/// </summary>
internal sealed record UpstreamError(UpstreamErrorKind Kind, ApiError Error, string Detail, int Status = 0, TimeSpan? RetryAfter = null);
