using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using ModelGateway.Admin;
using ModelGateway.Configuration;
using ModelGateway.Endpoints;
using ModelGateway.Forwarding;
using ModelGateway.Hosting;
using ModelGateway.Observability;
using ModelGateway.Protocols.Responses;
using ModelGateway.Providers;
using ModelGateway.Resilience;
using ModelGateway.Routing;
using ModelGateway.State;
using ModelGateway.Caching;
using ModelGateway.State.Redis;
using ModelGateway.Wire;
using Serilog;
using Serilog.Formatting.Compact;

namespace ModelGateway;

/// <summary>Builds the gateway host; Program and the functional tests share it.</summary>
public static class GatewayApplication
{
    public const string DefaultUrl = "http://localhost:8080";

    /// <summary>Creates the host. <paramref name="configure"/> lets tests add settings before services are built.</summary>
    public static WebApplication Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        // appsettings.json sits beside the binary: found whatever directory the gateway is started from.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });

        // Serilog is the only logger: the builder's own console provider would print every line twice.
        builder.Logging.ClearProviders();
        builder.Configuration.AddCommandLine(args, new Dictionary<string, string> { ["--config"] = $"{GatewayOptions.Section}:{nameof(GatewayOptions.ConfigPath)}" });
        if (string.IsNullOrEmpty(builder.Configuration[$"{GatewayOptions.Section}:{nameof(GatewayOptions.ConfigPath)}"])
            && Environment.GetEnvironmentVariable("MODELGATEWAY_CONFIG") is { Length: > 0 } fromEnvironment)
        {
            builder.Configuration[$"{GatewayOptions.Section}:{nameof(GatewayOptions.ConfigPath)}"] = fromEnvironment;
        }

        if (string.IsNullOrEmpty(builder.Configuration[$"{AdminOptions.Section}:{nameof(AdminOptions.MasterKey)}"])
            && Environment.GetEnvironmentVariable("MODELGATEWAY_MASTER_KEY") is { Length: > 0 } masterKey)
        {
            builder.Configuration[$"{AdminOptions.Section}:{nameof(AdminOptions.MasterKey)}"] = masterKey;
        }

        configure?.Invoke(builder);
        if (string.IsNullOrEmpty(builder.Configuration["urls"]))
        {
            // The documented default; ASPNETCORE_URLS, URLS or --urls replace it.
            builder.WebHost.UseUrls(DefaultUrl);
        }

        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        AddAdminPort(builder);
        var consoleLog = builder.Configuration.GetValue($"{ObservabilityOptions.Section}:{nameof(ObservabilityOptions.ConsoleLog)}", true);
        var levels = new LogLevels(builder.Configuration);
        var logDrops = new LogDropMonitor();
        builder.Services.AddSingleton(logDrops);
        builder.Services.AddSerilog(
            (services, logger) =>
            {
                levels.Configure(logger);
                logger.Enrich.FromLogContext();
                logger.Filter.ByExcluding(StartupFailure.IsReportedByProgram);
                if (consoleLog)
                {
                    // Async, so a request never waits on the console's write. When the console (or the
                    // pipe behind it) stalls long enough to fill 100,000 lines, lines are dropped and
                    // counted (modelgateway.log.events.dropped) rather than stalling the data plane.
                    logger.WriteTo.Async(sink => sink.Console(new RenderedCompactJsonFormatter()), bufferSize: 100_000, blockWhenFull: false, monitor: logDrops);
                }
            },
            // Each host keeps its own logger: with the static Log.Logger, hosts sharing a process
            // (tests, embedding) would log through whichever started last, and the first to stop
            // would silence the rest.
            preserveStaticLogger: true,
            writeToProviders: true);

        AddGateway(builder.Services, builder.Configuration);

        var app = builder.Build();
        ObserveLiveState(app.Services);
        app.UseMiddleware<RequestIdMiddleware>();
        app.UseMiddleware<AccessLogMiddleware>();
        app.UseMiddleware<ErrorShapeMiddleware>();
        app.UseMiddleware<KeyAuthenticationMiddleware>();
        app.MapOpenAIEndpoints();
        app.MapAnthropicEndpoints();
        app.MapOwnUsage();
        app.MapAdminEndpoints(app.Services.GetRequiredService<IOptions<AdminOptions>>().Value);
        app.MapDashboard(app.Services.GetRequiredService<IOptions<AdminOptions>>().Value, app.Services.GetRequiredService<IOptions<AuthOptions>>().Value);
        app.MapGet("/healthz/live", static () => Results.Text("ok"));
        var metrics = app.MapPrometheusScrapingEndpoint("/metrics");
        if (app.Services.GetRequiredService<IOptions<AdminOptions>>().Value.Port is > 0 and var adminPort)
        {
            metrics.RequireHost($"*:{adminPort}");
        }

        app.MapHealthChecks("/healthz/ready", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains("ready"),
            ResponseWriter = HealthResponse.WriteAsync,
        });
        app.MapFallback(static context => Protocols.ClientProtocols.WriteErrorAsync(context, OpenAIEndpoints.IsKnownPath(context.Request.Path) || AnthropicEndpoints.IsKnownPath(context.Request.Path)
            ? ApiError.MethodNotAllowed(context.Request.Method, context.Request.Path)
            : ApiError.NotFound(context.Request.Path)));
        return app;
    }

    // Gauges that read the catalog serving now and the state store's health.
    private static void ObserveLiveState(IServiceProvider services)
    {
        var metrics = services.GetRequiredService<GatewayMetrics>();
        var config = services.GetRequiredService<RoutingConfigManager>();
        metrics.ObserveHourlyCosts(() => config.IsLoaded
            ? config.Current.DeploymentList.Where(d => d.Pricing.PerHour > 0)
                .Select(d => new System.Diagnostics.Metrics.Measurement<double>(d.Pricing.PerHour, new KeyValuePair<string, object?>("deployment", d.Name), new KeyValuePair<string, object?>("provider", d.Provider.Name)))
                .ToList()
            : []);
        if (services.GetService<RedisConnection>() is { } redis)
        {
            metrics.ObserveStateStore(() => redis.IsAvailable ? 1 : 0);
        }
    }

    internal static void AddGateway(IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<GatewayOptions>().Bind(configuration.GetSection(GatewayOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.AddGracefulDrain(configuration);
        services.AddOptions<ObservabilityOptions>().Bind(configuration.GetSection(ObservabilityOptions.Section));
        services.AddMetrics();
        services.AddProviders();
        services.AddSingleton<TokenEstimator>();
        services.AddSingleton<Routing.Affinity.PrefixAffinity>();
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
        services.AddSingleton<GatewayTracing>();
        services.AddSingleton<GatewayTraffic>();
        services.AddSingleton<AccessLog>();
        AddTelemetry(services, configuration);

        AddState(services, configuration);
        services.AddResponses(configuration);
        services.AddHostedService<StartupReport>();
        services.AddHealthChecks().AddCheck<RoutingConfigHealthCheck>("routing-config", tags: ["ready"]);

        // Resilience: deployments whose circuit is open are probed back into service.
        services.AddHostedService<HealthProber>();

        // Live load signals: self-hosted servers' own queue, scraped off the request path.
        Routing.Signals.LoadSignalsServiceCollectionExtensions.AddLoadSignals(services);

        // Route objectives: deployments out of favour are re-measured by probes, not by client requests.
        services.AddSingleton<Routing.Objectives.ObjectiveProber>();
        services.AddHostedService(static sp => sp.GetRequiredService<Routing.Objectives.ObjectiveProber>());

        // Caching: the per-route response cache.
        services.AddResponseCaching(configuration);
    }

    // Metrics for Prometheus always; traces and OTLP export only when an OTLP endpoint is configured,
    // so a gateway nobody traces does not pay for building spans.
    private static void AddTelemetry(IServiceCollection services, IConfiguration configuration)
    {
        var otlp = !string.IsNullOrEmpty(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("modelgateway", serviceVersion: typeof(GatewayApplication).Assembly.GetName().Version?.ToString()))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(GatewayMetrics.MeterName)
                    .AddRuntimeInstrumentation()
                    .AddPrometheusExporter();

                // ASP.NET Core's own meter gives http.server.request.duration, which the gateway's metrics already
                // cover per route: opt-in. (The instrumentation package's metrics hook would also make the host
                // create an Activity per request, so the meter is named directly.)
                if (configuration.GetValue<bool>($"{ObservabilityOptions.Section}:{nameof(ObservabilityOptions.HttpServerMetrics)}"))
                {
                    metrics.AddMeter("Microsoft.AspNetCore.Hosting");
                }
                if (otlp)
                {
                    metrics.AddOtlpExporter();
                }
            });
        if (otlp)
        {
            telemetry.WithTracing(tracing => tracing
                .AddSource(GatewayTracing.SourceName)
                .AddAspNetCoreInstrumentation(options => options.Filter = static context =>
                    !context.Request.Path.StartsWithSegments("/healthz") && !context.Request.Path.StartsWithSegments("/metrics"))
                .AddHttpClientInstrumentation()
                .AddOtlpExporter());
        }
    }

    // Keys, limits and usage: in this process by default, in Redis when State:Redis is set.
    private static void AddState(IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<StateOptions>().Bind(configuration.GetSection(StateOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<StateOptions>, StateOptionsValidator>();
        services.AddOptions<AuthOptions>().Bind(configuration.GetSection(AuthOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AuthOptions>, AuthOptionsValidator>();
        services.AddOptions<AdminOptions>().Bind(configuration.GetSection(AdminOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AdminOptions>, AdminOptionsValidator>();
        services.AddSingleton<KeyAuthenticator>();
        services.AddSingleton<KeyAdministration>();
        services.AddSingleton<UsageReports>();
        services.AddSingleton<DashboardState>();

        if (!string.IsNullOrWhiteSpace(configuration[$"{StateOptions.Section}:{nameof(StateOptions.Redis)}"]))
        {
            services.AddSingleton<RedisConnection>();
            services.AddHostedService(static sp => sp.GetRequiredService<RedisConnection>());
            services.AddSingleton<IRateLimiter, RedisRateLimiter>();
            services.AddSingleton<IKeyStore, RedisKeyStore>();
            services.AddHostedService<Routing.Affinity.AffinitySharing>();
            services.AddSingleton<RecoverySharing>();
            services.AddHostedService(static sp => sp.GetRequiredService<RecoverySharing>());
            services.AddSingleton<RedisUsageStore>();
            services.AddSingleton<IUsageRecorder>(static sp => sp.GetRequiredService<RedisUsageStore>());
            services.AddSingleton<IUsageQuery>(static sp => sp.GetRequiredService<RedisUsageStore>());
            services.AddHealthChecks().AddCheck<RedisHealthCheck>("redis", tags: ["ready"]);

            // Quotas: what each provider says is left, shared between replicas.
            services.AddHostedService<Routing.Quotas.QuotaSharing>();
            return;
        }

        services.AddSingleton<IRateLimiter>(static sp => new InMemoryRateLimiter(sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<IKeyStore, InMemoryKeyStore>();
        services.AddSingleton<InMemoryUsageStore>();
        services.AddSingleton<IUsageRecorder>(static sp => sp.GetRequiredService<InMemoryUsageStore>());
        services.AddSingleton<IUsageQuery>(static sp => sp.GetRequiredService<InMemoryUsageStore>());
    }

    // With Admin:Port set, the admin API answers only there: add that port to what Kestrel listens on.
    private static void AddAdminPort(WebApplicationBuilder builder)
    {
        var port = builder.Configuration.GetValue<int>($"{AdminOptions.Section}:{nameof(AdminOptions.Port)}");
        if (port <= 0)
        {
            return;
        }

        var urls = builder.Configuration["urls"] is { Length: > 0 } configured ? configured : DefaultUrl;
        var first = new Uri(urls.Split(';', StringSplitOptions.RemoveEmptyEntries)[0].Replace("+", "0.0.0.0", StringComparison.Ordinal).Replace("*", "0.0.0.0", StringComparison.Ordinal));
        builder.WebHost.UseUrls($"{urls};{first.Scheme}://{first.Host}:{port}");
    }
}
