namespace ModelGateway.Routing.Quotas;

/// <summary>
/// What one upstream response said about its deployment's quota, in neutral terms: how many requests
/// and tokens are left and how long until each window resets. Each adapter reads its provider's own
/// headers into it; null means the provider did not say.
/// </summary>
internal readonly record struct QuotaReading
{
    public long? RequestsLimit { get; init; }

    public long? RequestsRemaining { get; init; }

    /// <summary>Time from the response until the requests window resets.</summary>
    public TimeSpan? RequestsReset { get; init; }

    public long? TokensLimit { get; init; }

    public long? TokensRemaining { get; init; }

    public TimeSpan? TokensReset { get; init; }

    /// <summary>True when the response carried no quota figures at all (the common case for bare servers).</summary>
    public bool IsEmpty => RequestsRemaining is null && TokensRemaining is null;
}
