using ModelGateway.Configuration;

namespace ModelGateway.Providers.Gemini;

/// <summary><c>kind: gemini</c>: the Gemini API of Google AI Studio (<c>x-goog-api-key</c>).</summary>
internal sealed class GeminiFactory(ProviderServices services) : ProviderAdapterFactory(services)
{
    public override string Kind => ProviderKinds.Gemini;

    public override string SemanticName => "gcp.gemini";

    public override DeploymentTier DefaultTier => DeploymentTier.Saas;

    public override Uri? DefaultBaseUrl { get; } = new("https://generativelanguage.googleapis.com");

    public override bool RequiresApiKey => true;

    // No legacy completions; embeddings through batchEmbedContents; no assistant prefill to continue from.
    public override Capabilities Supports => Capabilities.Chat | Capabilities.Embeddings | Capabilities.Tools | Capabilities.Vision | Capabilities.JsonSchema;

    // Every current Gemini model takes tools, images and a response schema; embedding models declare [embeddings].
    public override Capabilities DefaultCapabilities => Capabilities.Chat | Capabilities.Tools | Capabilities.Vision | Capabilities.JsonSchema;

    // Gemini takes inline bytes or its own file URIs, never an arbitrary URL.
    public override bool TakesMediaUrls => false;

    protected override bool TakesApiVersion => true;

    protected override object? Compile(ProviderDocument document, string path, ConfigContext context)
    {
        var version = document.ApiVersion ?? GeminiSettings.DefaultVersion;
        if (!GeminiSettings.Versions.Contains(version, StringComparer.Ordinal))
        {
            context.Error(path + ".apiVersion", $"'{version}' is not a Gemini API version (one of {string.Join(", ", GeminiSettings.Versions)})");
        }

        return new GeminiSettings(version);
    }

    public override IProviderAdapter Create(ProviderEndpoint provider) => new GeminiAdapter(provider, Services);
}
