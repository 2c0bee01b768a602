namespace ModelGateway.Providers.Anthropic;

/// <summary>
/// The Anthropic API version a provider entry speaks, and the rules that follow from it. Versions are
/// dates; from <see cref="BearerVersion"/> on, the key travels as <c>Authorization: Bearer</c> and
/// <c>temperature</c>, <c>top_p</c> and <c>top_k</c> are refused, so the mapper drops them.
/// </summary>
internal sealed record AnthropicSettings(string Version, string[] Betas)
{
    /// <summary>What Claude Code and most integrations send.</summary>
    public const string DefaultVersion = "2023-06-01";

    /// <summary>The version the current official SDKs send (checked 2026-12-04).</summary>
    public const string BearerVersion = "2026-10-21";

    public bool UsesBearerAuth => string.CompareOrdinal(Version, BearerVersion) >= 0;

    public bool AcceptsSamplingParameters => string.CompareOrdinal(Version, BearerVersion) < 0;

    public static bool IsValidVersion(string version)
        => version.Length == 10 && DateOnly.TryParseExact(version, "yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out _);
}
