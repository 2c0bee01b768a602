using ModelGateway.Configuration;

namespace ModelGateway.Providers.AzureOpenAI;

/// <summary><c>kind: azure-openai</c>: an Azure OpenAI resource; <c>baseUrl</c> is the resource endpoint.</summary>
internal sealed class AzureOpenAIFactory(ProviderServices services) : ProviderAdapterFactory(services)
{
    /// <summary>The GA data-plane version used when the file names none.</summary>
    public const string DefaultApiVersion = "2024-10-21";

    public override string Kind => ProviderKinds.AzureOpenAI;

    public override string SemanticName => "azure.ai.openai";

    public override DeploymentTier DefaultTier => DeploymentTier.Paas;

    public override Capabilities Supports => base.Supports | ForwardedCapabilities.All;

    public override bool RequiresApiKey => true;

    protected override bool TakesApiVersion => true;

    protected override object? Compile(ProviderDocument document, string path, ConfigContext context)
        => new AzureOpenAISettings(document.ApiVersion ?? DefaultApiVersion);

    public override IProviderAdapter Create(ProviderEndpoint provider)
        => new AzureOpenAIAdapter(provider, Services.Forwarder, Services.HttpClients.Get(provider.ConnectTimeout), Services.TimeProvider, Services.Options);
}
