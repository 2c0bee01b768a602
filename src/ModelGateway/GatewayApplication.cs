using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.Endpoints;
using ModelGateway.Forwarding;
using ModelGateway.Observability;
using ModelGateway.Resilience;
using ModelGateway.Routing;
using ModelGateway.State;
using ModelGateway.Wire;
using Serilog;
using Serilog.Formatting.Compact;

namespace ModelGateway;

/// <summary>Builds the gateway host; Program and the functional tests share it.</summary>
public static class GatewayApplication
{
    /// <summary>Creates the host. <paramref name="configure"/> lets tests add settings before services are built.</summary>
    public static WebApplication Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.Configuration.AddCommandLine(args, new Dictionary<string, string> { ["--config"] = $"{GatewayOptions.Section}:{nameof(GatewayOptions.ConfigPath)}" });
        if (string.IsNullOrEmpty(builder.Configuration[$"{GatewayOptions.Section}:{nameof(GatewayOptions.ConfigPath)}"])
            && Environment.GetEnvironmentVariable("MODELGATEWAY_CONFIG") is { Length: > 0 } fromEnvironment)
        {
            builder.Configuration[$"{GatewayOptions.Section}:{nameof(GatewayOptions.ConfigPath)}"] = fromEnvironment;
        }

        configure?.Invoke(builder);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        var consoleLog = builder.Configuration.GetValue($"{ObservabilityOptions.Section}:{nameof(ObservabilityOptions.ConsoleLog)}", true);
        builder.Services.AddSerilog(
            (services, logger) =>
            {
                logger.ReadFrom.Configuration(builder.Configuration).Enrich.FromLogContext();
                if (consoleLog)
                {
                    // Async: a slow console must never hold a request up.
                    logger.WriteTo.Async(sink => sink.Console(new RenderedCompactJsonFormatter()));
                }
            },
            writeToProviders: true);

        AddGateway(builder.Services, builder.Configuration);

        var app = builder.Build();
        app.UseMiddleware<RequestIdMiddleware>();
        app.UseMiddleware<ErrorShapeMiddleware>();
        app.MapOpenAIEndpoints();
        app.MapGet("/healthz/live", static () => Results.Text("ok"));
        app.MapHealthChecks("/healthz/ready", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains("ready"),
            ResponseWriter = HealthResponse.WriteAsync,
        });
        app.MapFallback(static context => (OpenAIEndpoints.IsKnownPath(context.Request.Path)
            ? ApiError.MethodNotAllowed(context.Request.Method, context.Request.Path)
            : ApiError.NotFound(context.Request.Path)).WriteAsync(context));
        return app;
    }

    internal static void AddGateway(IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<GatewayOptions>().Bind(configuration.GetSection(GatewayOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.AddOptions<ObservabilityOptions>().Bind(configuration.GetSection(ObservabilityOptions.Section));
        services.AddHttpForwarder();
        services.AddMetrics();

        services.AddSingleton<UpstreamHttpClients>();
        services.AddSingleton<UpstreamForwarder>();
        services.AddSingleton<TokenEstimator>();
        services.AddSingleton<Router>();
        services.AddSingleton<DeploymentStateRegistry>();
        services.AddSingleton(static sp =>
        {
            var options = sp.GetRequiredService<IOptions<GatewayOptions>>().Value;
            return new RetryBudget(sp.GetRequiredService<TimeProvider>(), options.RetryBudgetRatio, options.RetryBudgetMinimumPerSecond);
        });
        services.AddSingleton(static sp => sp.GetRequiredService<IOptions<GatewayOptions>>().Value);
        services.AddSingleton<FailoverExecutor>();
        services.AddSingleton<CatalogBuilder>();
        services.AddSingleton<RoutingConfigManager>();
        services.AddHostedService(static sp => sp.GetRequiredService<RoutingConfigManager>());
        services.AddHostedService<TokenizerWarmUp>();
        services.AddSingleton<ResponseRelay>();
        services.AddSingleton<RequestIntake>();
        services.AddSingleton<CompletionHandler>();
        services.AddSingleton<ModelsEndpoint>();
        services.AddSingleton<RouteExplainEndpoint>();
        services.AddSingleton<GatewayMetrics>();
        services.AddSingleton<AccessLog>();

        services.AddSingleton<IRateLimiter>(static sp => new InMemoryRateLimiter(sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<InMemoryUsageStore>();
        services.AddSingleton<IUsageRecorder>(static sp => sp.GetRequiredService<InMemoryUsageStore>());
        services.AddSingleton<IUsageQuery>(static sp => sp.GetRequiredService<InMemoryUsageStore>());

        services.AddHealthChecks().AddCheck<RoutingConfigHealthCheck>("routing-config", tags: ["ready"]);
    }
}
