using ModelGateway.Configuration;

namespace ModelGateway.Providers.OpenAI;

/// <summary><c>kind: openai</c>: OpenAI's own API; a key is required.</summary>
internal sealed class OpenAIFactory(ProviderServices services) : ProviderAdapterFactory(services)
{
    public override string Kind => ProviderKinds.OpenAI;

    public override string SemanticName => "openai";

    public override DeploymentTier DefaultTier => DeploymentTier.Saas;

    public override Capabilities Supports => base.Supports | ForwardedCapabilities.All;

    public override Uri? DefaultBaseUrl { get; } = new("https://api.openai.com/v1");

    public override bool RequiresApiKey => true;

    public override IProviderAdapter Create(ProviderEndpoint provider)
        => new OpenAIAdapter(provider, Services.Forwarder, Services.HttpClients.Get(provider.ConnectTimeout), Services.TimeProvider, Services.Options, servesResponses: true);
}

/// <summary><c>kind: openai-compatible</c>: any server speaking OpenAI's API (vLLM, Ollama, TGI, Groq, Mistral...).</summary>
internal sealed class OpenAICompatibleFactory(ProviderServices services) : ProviderAdapterFactory(services)
{
    public override string Kind => ProviderKinds.OpenAICompatible;

    public override string SemanticName => "openai_compatible";

    public override DeploymentTier DefaultTier => DeploymentTier.Iaas;

    public override Capabilities Supports => base.Supports | ForwardedCapabilities.All;

    public override IProviderAdapter Create(ProviderEndpoint provider)
        => new OpenAIAdapter(provider, Services.Forwarder, Services.HttpClients.Get(provider.ConnectTimeout), Services.TimeProvider, Services.Options);
}
