namespace ModelGateway.FakeUpstream;

/// <summary>Which provider's quota headers a <see cref="UpstreamQuota"/> sends.</summary>
public enum QuotaHeaderStyle
{
    /// <summary><c>x-ratelimit-{limit,remaining,reset}-requests</c> (resets as Go durations), as OpenAI, Azure and Groq send.</summary>
    OpenAI,

    /// <summary><c>anthropic-ratelimit-requests-{limit,remaining,reset}</c> (resets as RFC 3339 instants).</summary>
    Anthropic,

    /// <summary>No quota headers at all, not even <c>retry-after</c>: a bare OpenAI-compatible server.</summary>
    None,
}

/// <summary>
/// A request quota per model enforced over a sliding window, as Azure OpenAI enforces its per-deployment
/// limits over short windows: at most <see cref="Requests"/> admitted in any <see cref="Window"/>. Admitted
/// requests get the chosen behaviour plus the quota headers; the others get 429 with the same headers
/// (and <c>retry-after</c>, unless the style is <see cref="QuotaHeaderStyle.None"/>).
/// </summary>
public sealed record UpstreamQuota
{
    public required int Requests { get; init; }

    public TimeSpan Window { get; init; } = TimeSpan.FromSeconds(10);

    public QuotaHeaderStyle Style { get; init; } = QuotaHeaderStyle.OpenAI;
}
