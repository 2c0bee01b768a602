using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace ModelGateway.Hosting;

/// <summary>Registers the graceful drain: the shutdown sequence, its readiness check and its options.</summary>
internal static class HostingServiceCollectionExtensions
{
    public static IServiceCollection AddGracefulDrain(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ShutdownOptions>()
            .Bind(configuration.GetSection(ShutdownOptions.Section))
            .Configure(options =>
            {
                // Gateway:ShutdownTimeout was the grace's name before Shutdown:Grace: honour it when the new name is unset.
                if (configuration[$"{ShutdownOptions.Section}:{nameof(ShutdownOptions.Grace)}"] is null
                    && configuration.GetValue<TimeSpan?>("Gateway:ShutdownTimeout") is { } legacy)
                {
                    options.Grace = legacy;
                }
            })
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ShutdownOptions>, ShutdownOptionsValidator>());

        // The host's own deadline comes after the drain's last step, so it never cuts a stream silently.
        services.AddOptions<HostOptions>().Configure<IOptions<ShutdownOptions>>(static (host, shutdown) => host.ShutdownTimeout = shutdown.Value.Total);
        services.TryAddSingleton<GracefulDrain>();
        services.AddHostedService(static sp => sp.GetRequiredService<GracefulDrain>());
        services.AddTransient<IStartupFilter, DrainStartupFilter>();
        services.AddHealthChecks().AddCheck<DrainHealthCheck>("shutdown", tags: ["ready"]);
        return services;
    }
}

/// <summary>
/// While draining, answers close their connection: clients and proxies holding keep-alive connections
/// to this replica reconnect, and land on a replica that stays. No async frame: one read per request.
/// </summary>
internal sealed class DrainStartupFilter(GracefulDrain drain) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(handler => context =>
        {
            if (drain.IsDraining)
            {
                context.Response.Headers.Connection = "close";
            }

            return handler(context);
        });
        next(app);
    };
}
