namespace ModelGateway.Providers.Gemini;

/// <summary>The Gemini API version a provider entry speaks: the path segment before <c>/models/</c>.</summary>
internal sealed record GeminiSettings(string ApiVersion)
{
    /// <summary>Where every current feature (thinking, JSON Schema output) is served.</summary>
    public const string DefaultVersion = "v1beta";

    public static readonly string[] Versions = ["v1beta", "v1", "v1alpha"];
}
