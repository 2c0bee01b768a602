using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ModelGateway.Forwarding;
using ModelGateway.State;
using ModelGateway.State.Responses;

namespace ModelGateway.Protocols.Responses;

/// <summary>Registers the Responses API: its protocol, and the store its follow-ups read (Redis when state is in Redis).</summary>
internal static class ResponsesServiceCollectionExtensions
{
    public static IServiceCollection AddResponses(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ResponseStoreOptions>().Bind(configuration.GetSection(ResponseStoreOptions.Section)).ValidateOnStart();
        services.TryAddSingleton<IValidateOptions<ResponseStoreOptions>, ResponseStoreOptionsValidator>();
        if (!string.IsNullOrWhiteSpace(configuration[$"{StateOptions.Section}:{nameof(StateOptions.Redis)}"]))
        {
            services.TryAddSingleton<IResponseStore, RedisResponseStore>();
        }
        else
        {
            services.TryAddSingleton<IResponseStore, InMemoryResponseStore>();
        }

        services.TryAddSingleton<ResponsesProtocol>();
        services.TryAddSingleton<RawForwarder>();
        services.TryAddSingleton<Endpoints.ForwardedHandler>();
        return services;
    }
}
