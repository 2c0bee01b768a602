using ModelGateway.Configuration;

namespace ModelGateway.Providers.Anthropic;

/// <summary><c>kind: anthropic</c>: Anthropic's Messages API (<c>x-api-key</c> or bearer, <c>anthropic-version</c>).</summary>
internal sealed class AnthropicFactory(ProviderServices services) : ProviderAdapterFactory(services)
{
    public override string Kind => ProviderKinds.Anthropic;

    public override string SemanticName => "anthropic";

    public override DeploymentTier DefaultTier => DeploymentTier.Saas;

    public override Uri? DefaultBaseUrl { get; } = new("https://api.anthropic.com");

    public override bool RequiresApiKey => true;

    // No embeddings or legacy completions on the Messages API: a route asking for them gets a clear 400.
    public override Capabilities Supports => Capabilities.Chat | Capabilities.Tools | Capabilities.Vision | Capabilities.JsonSchema | Capabilities.Prefill;

    // Every current Claude model takes tools and images, and continues an assistant prefill.
    public override Capabilities DefaultCapabilities => Supports;

    protected override bool TakesApiVersion => true;

    protected override bool TakesBetas => true;

    protected override object? Compile(ProviderDocument document, string path, ConfigContext context)
    {
        var version = document.ApiVersion ?? AnthropicSettings.DefaultVersion;
        if (!AnthropicSettings.IsValidVersion(version))
        {
            context.Error(path + ".apiVersion", $"'{version}' is not an anthropic-version (a date such as {AnthropicSettings.DefaultVersion})");
        }

        var betas = document.Betas ?? [];
        for (var i = 0; i < betas.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(betas[i]) || betas[i].Contains(',', StringComparison.Ordinal))
            {
                context.Error($"{path}.betas[{i}]", "name one beta flag per entry (e.g. prompt-caching-2024-07-31)");
            }
        }

        return new AnthropicSettings(version, [.. betas]);
    }

    public override IProviderAdapter Create(ProviderEndpoint provider)
        => new AnthropicAdapter(provider, Services.Forwarder, Services.HttpClients.Get(provider.ConnectTimeout), Services.TimeProvider, Services.Options);
}
