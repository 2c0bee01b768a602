using Microsoft.Extensions.DependencyInjection.Extensions;
using ModelGateway.Forwarding;
using ModelGateway.Providers.Anthropic;
using ModelGateway.Providers.AzureOpenAI;
using ModelGateway.Providers.Bedrock;
using ModelGateway.Providers.OpenAI;
using ModelGateway.Providers.Simulated;

namespace ModelGateway.Providers;

/// <summary>Registers the provider kinds and what their adapters are built from.</summary>
internal static class ProvidersServiceCollectionExtensions
{
    public static IServiceCollection AddProviders(this IServiceCollection services)
    {
        services.AddHttpForwarder();
        services.TryAddSingleton<UpstreamHttpClients>();
        services.TryAddSingleton<UpstreamForwarder>();
        // Always the real fetcher: it reads each deployment's mediaFetch and fetches nothing for one without it.
        services.TryAddSingleton<Media.IMediaFetcher, Media.MediaFetcher>();
        services.TryAddSingleton<ProviderServices>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapterFactory, OpenAIFactory>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapterFactory, OpenAICompatibleFactory>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapterFactory, AzureOpenAIFactory>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapterFactory, AnthropicFactory>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapterFactory, SimulatedFactory>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapterFactory, Gemini.GeminiFactory>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapterFactory, VertexAI.VertexAIFactory>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IProviderAdapterFactory, BedrockFactory>());
        services.TryAddSingleton<ProviderAdapterRegistry>();
        return services;
    }
}
