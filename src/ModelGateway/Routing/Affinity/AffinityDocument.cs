namespace ModelGateway.Configuration;

/// <summary>
/// Prefix affinity: requests that share a long prompt prefix (system prompt and tools, a conversation's
/// earlier turns) prefer the deployment that served it last, so its prompt cache stays warm.
/// </summary>
public sealed class AffinityDocument
{
    /// <summary>On when the block is present, unless set to false.</summary>
    public bool? Prefix { get; set; }

    /// <summary>Prefixes shorter than this (estimated tokens) are neither remembered nor looked up.</summary>
    public int? MinPrefixTokens { get; set; }

    /// <summary>How long a prefix is remembered after it was last served (provider caches live minutes).</summary>
    public string? Ttl { get; set; }

    /// <summary>Scales the bonus the remembered deployment gets (1: the cache's worth as priced).</summary>
    public double? Weight { get; set; }
}
