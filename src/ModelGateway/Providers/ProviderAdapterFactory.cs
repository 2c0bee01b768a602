using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;

namespace ModelGateway.Providers;

/// <summary>
/// The common part of a provider kind's factory: the services adapters are built from, and the
/// refusal of fields that belong to other kinds, so a typo'd or misplaced field is an error with its
/// path rather than silently ignored.
/// </summary>
internal abstract class ProviderAdapterFactory(ProviderServices services) : IProviderAdapterFactory
{
    protected ProviderServices Services { get; } = services;

    public abstract string Kind { get; }

    public abstract string SemanticName { get; }

    public abstract DeploymentTier DefaultTier { get; }

    public virtual Uri? DefaultBaseUrl => null;

    public virtual Uri? DefaultBaseUrlFor(ProviderDocument document) => DefaultBaseUrl;

    public virtual bool HasEndpoint => true;

    public virtual bool RequiresApiKey => false;

    public virtual Capabilities Supports => Capabilities.Chat | Capabilities.Completions | Capabilities.Embeddings | Capabilities.Tools
        | Capabilities.Vision | Capabilities.JsonSchema | Capabilities.Prefill;

    public virtual Capabilities DefaultCapabilities => Capabilities.Chat;

    public virtual bool TakesMediaUrls => true;

    public object? CompileSettings(ProviderDocument document, string path, ConfigContext context)
    {
        if (!TakesApiVersion)
        {
            context.NotFor(document.ApiVersion, path + ".apiVersion", Kind);
        }

        if (!TakesBetas)
        {
            context.NotFor(document.Betas, path + ".betas", Kind);
        }

        if (!TakesSimulation)
        {
            context.NotFor(document.Simulate, path + ".simulate", Kind);
        }

        if (!TakesGoogleCloudSettings)
        {
            context.NotFor(document.Project, path + ".project", Kind);
            context.NotFor(document.Location, path + ".location", Kind);
            context.NotFor(document.CredentialsFile, path + ".credentialsFile", Kind);
            context.NotFor(document.Publisher, path + ".publisher", Kind);
        }

        if (!TakesAwsCredentials)
        {
            context.NotFor(document.AccessKeyId, path + ".accessKeyId", Kind);
            context.NotFor(document.SecretAccessKey, path + ".secretAccessKey", Kind);
            context.NotFor(document.SessionToken, path + ".sessionToken", Kind);
            context.NotFor(document.Profile, path + ".profile", Kind);
        }

        return Compile(document, path, context);
    }

    public abstract IProviderAdapter Create(ProviderEndpoint provider);

    protected virtual bool TakesApiVersion => false;

    protected virtual bool TakesBetas => false;

    protected virtual bool TakesSimulation => false;

    /// <summary>Vertex AI's <c>project</c>, <c>location</c>, <c>credentialsFile</c> and <c>publisher</c>.</summary>
    protected virtual bool TakesGoogleCloudSettings => false;

    /// <summary>Bedrock's <c>accessKeyId</c>, <c>secretAccessKey</c>, <c>sessionToken</c> and <c>profile</c>.</summary>
    protected virtual bool TakesAwsCredentials => false;

    /// <summary>The kind's own settings from the fields it takes.</summary>
    protected virtual object? Compile(ProviderDocument document, string path, ConfigContext context) => null;
}

/// <summary>What every adapter is built from, resolved once from DI.</summary>
internal sealed class ProviderServices(UpstreamForwarder forwarder, UpstreamHttpClients httpClients, TimeProvider timeProvider, IOptions<GatewayOptions> options, Media.IMediaFetcher mediaFetcher)
{
    /// <summary>Fetches client URLs for providers that need bytes (off unless an admin allows it).</summary>
    public Media.IMediaFetcher MediaFetcher { get; } = mediaFetcher;

    public UpstreamForwarder Forwarder { get; } = forwarder;

    public UpstreamHttpClients HttpClients { get; } = httpClients;

    public TimeProvider TimeProvider { get; } = timeProvider;

    public GatewayOptions Options { get; } = options.Value;
}
