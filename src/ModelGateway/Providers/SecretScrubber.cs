using System.Text.RegularExpressions;
using ModelGateway.Configuration;

namespace ModelGateway.Providers;

/// <summary>Removes credentials from text that came from an upstream before a client or a log sees it.</summary>
internal static partial class SecretScrubber
{
    /// <summary>Removes the deployment's credential and anything shaped like an API key.</summary>
    public static string Scrub(string text, Deployment deployment)
    {
        if (deployment.Provider.ApiKey is { Value.Length: > 0 } key && text.Contains(key.Value, StringComparison.Ordinal))
        {
            text = text.Replace(key.Value, "***", StringComparison.Ordinal);
        }

        return KeyPattern().Replace(text, "***");
    }

    // OpenAI/Anthropic-style keys, Google API keys, AWS access key ids, bearer tokens and bare hex secrets.
    [GeneratedRegex(@"\b(sk|rk|pk|sess)-[A-Za-z0-9_\-*]{6,}|\bAIza[0-9A-Za-z_\-]{20,}|\b(AKIA|ASIA)[0-9A-Z]{16}\b|\bya29\.[0-9A-Za-z_\-.]{10,}|\b[0-9a-f]{32}\b")]
    private static partial Regex KeyPattern();

    public static string Truncate(string text, int max) => text.Length <= max ? text : text[..max] + "…";
}
