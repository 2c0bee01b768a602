namespace ModelGateway.Canonical;

/// <summary>
/// Token counts of one response in every provider's terms. <see cref="Input"/> counts every input
/// token, cache reads and writes included (OpenAI's <c>prompt_tokens</c>); Anthropic reports the three
/// parts separately and its decoder adds them up. <see cref="Output"/> includes reasoning tokens
/// (OpenAI's <c>completion_tokens</c>).
/// </summary>
internal struct TokenUsage
{
    /// <summary>All input tokens, including <see cref="CacheRead"/> and <see cref="CacheWrite"/>.</summary>
    public long Input;

    /// <summary>The part of <see cref="Input"/> read from the provider's prompt cache.</summary>
    public long CacheRead;

    /// <summary>The part of <see cref="Input"/> written to the provider's prompt cache.</summary>
    public long CacheWrite;

    /// <summary>All output tokens, including <see cref="Reasoning"/>.</summary>
    public long Output;

    /// <summary>The part of <see cref="Output"/> spent on reasoning (thinking).</summary>
    public long Reasoning;

    /// <summary>True when the upstream reported the numbers; false when they were estimated.</summary>
    public bool Reported;

    /// <summary>Input tokens billed at the plain input price.</summary>
    public readonly long UncachedInput => Math.Max(0, Input - CacheRead - CacheWrite);

    public readonly long Total => Input + Output;

    /// <summary>Adds another attempt's usage (a continued stream bills both attempts).</summary>
    public void Add(in TokenUsage other)
    {
        Input += other.Input;
        CacheRead += other.CacheRead;
        CacheWrite += other.CacheWrite;
        Output += other.Output;
        Reasoning += other.Reasoning;
    }
}
