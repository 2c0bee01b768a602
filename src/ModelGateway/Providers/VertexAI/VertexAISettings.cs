namespace ModelGateway.Providers.VertexAI;

/// <summary>
/// A Vertex AI provider entry: the project and location its models live in, the endpoint that serves them,
/// the publisher (when the model id does not say it) and the service-account key (null: Application Default
/// Credentials).
/// </summary>
internal sealed record VertexAISettings(string Project, string Location, string? Publisher, string Endpoint, ServiceAccountKey? Key, string CredentialId)
{
    public const string Google = "google";
    public const string Anthropic = "anthropic";

    /// <summary>The regional endpoint of a location; <c>global</c> has no region prefix.</summary>
    public static string RegionalEndpoint(string location)
        => location == "global" ? "https://aiplatform.googleapis.com" : $"https://{location}-aiplatform.googleapis.com";

    /// <summary>Claude models are Anthropic's, unless the entry names the publisher.</summary>
    public bool IsClaude(string model) => Publisher is { } publisher ? publisher == Anthropic : model.StartsWith("claude", StringComparison.OrdinalIgnoreCase);
}
