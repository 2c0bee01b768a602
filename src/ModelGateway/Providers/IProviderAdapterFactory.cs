using ModelGateway.Configuration;

namespace ModelGateway.Providers;

/// <summary>
/// Everything the gateway knows about one provider kind: its defaults, which of a provider entry's
/// fields it takes and how to check them, and how to build its adapter. Registered by kind in DI;
/// <see cref="ProviderAdapterRegistry"/> looks them up, so no code switches on a kind name.
/// </summary>
internal interface IProviderAdapterFactory
{
    /// <summary>The kind name in the routing file (<see cref="ProviderKinds"/>).</summary>
    string Kind { get; }

    /// <summary>The OpenTelemetry GenAI <c>gen_ai.provider.name</c> of this kind.</summary>
    string SemanticName { get; }

    /// <summary>The tier its deployments are in unless the file says otherwise.</summary>
    DeploymentTier DefaultTier { get; }

    /// <summary>Where it is reached when the file gives no <c>baseUrl</c>; null means <c>baseUrl</c> is required.</summary>
    Uri? DefaultBaseUrl { get; }

    /// <summary>Where an entry without <c>baseUrl</c> is reached, which may follow from its own fields (Bedrock's <c>region</c>).</summary>
    Uri? DefaultBaseUrlFor(ProviderDocument document) => DefaultBaseUrl;

    /// <summary>False for in-process providers, which take no URL, key or headers.</summary>
    bool HasEndpoint { get; }

    /// <summary>Whether an entry without <c>apiKey</c> is an error.</summary>
    bool RequiresApiKey { get; }

    /// <summary>What deployments of this kind may declare; anything else is a configuration error.</summary>
    Capabilities Supports { get; }

    /// <summary>Whether the provider takes image and document URLs as they are (OpenAI, Azure, Anthropic) or needs bytes.</summary>
    bool TakesMediaUrls { get; }

    /// <summary>What a deployment that declares nothing can do.</summary>
    Capabilities DefaultCapabilities { get; }

    /// <summary>
    /// Checks and compiles the kind's own fields of a provider entry (every problem with its path),
    /// refusing fields that belong to other kinds. Returns the kind's settings, or null.
    /// </summary>
    object? CompileSettings(ProviderDocument document, string path, ConfigContext context);

    /// <summary>Builds the adapter of a compiled provider entry. Called only once the whole file is valid.</summary>
    IProviderAdapter Create(ProviderEndpoint provider);
}
