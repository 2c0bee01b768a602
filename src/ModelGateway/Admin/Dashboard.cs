using System.Net.Http.Headers;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.Observability;
using ModelGateway.Resilience;
using ModelGateway.State;
using ModelGateway.State.Redis;
using ModelGateway.Wire;

namespace ModelGateway.Admin;

/// <summary>
/// The built-in live ops page: <c>/dashboard</c> (a self-contained HTML page) and the JSON it polls,
/// <c>/dashboard/api/state</c>. With keys enabled both need the master key (HTTP Basic with the master
/// key as password, or a Bearer header); with <c>Admin:Port</c> set they answer only on that port.
/// </summary>
internal static class Dashboard
{
    public const string ResourceName = "ModelGateway.dashboard.html";

    public static IEndpointRouteBuilder MapDashboard(this IEndpointRouteBuilder endpoints, AdminOptions admin, AuthOptions auth)
    {
        var group = endpoints.MapGroup("/dashboard");
        if (auth.Mode == AuthMode.Keys)
        {
            group.AddEndpointFilter(new DashboardAuthFilter(admin.MasterKey!));
        }

        if (admin.Port > 0)
        {
            group.RequireHost($"*:{admin.Port}");
        }

        group.MapGet("/", static (HttpContext context) => WritePageAsync(context));
        group.MapGet("/api/state", static (HttpContext context, DashboardState state) => state.WriteAsync(context));
        return endpoints;
    }

    private static async Task WritePageAsync(HttpContext context)
    {
        await using var page = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException("The dashboard page is missing from the assembly.");
        context.Response.ContentType = "text/html; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; img-src 'self' data:";
        await page.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    /// <summary>Master key as the password of HTTP Basic (so a browser can log in), or as a Bearer token.</summary>
    private sealed class DashboardAuthFilter(string masterKey) : IEndpointFilter
    {
        public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
        {
            var header = context.HttpContext.Request.Headers.Authorization.ToString();
            if (AuthenticationHeaderValue.TryParse(header, out var value) && value.Parameter is { } parameter)
            {
                var presented = value.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase) ? parameter
                    : value.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase) ? BasicPassword(parameter)
                    : null;
                if (presented is not null && KeySecrets.Equal(presented, masterKey))
                {
                    return await next(context);
                }
            }

            context.HttpContext.Response.Headers.WWWAuthenticate = "Basic realm=\"ModelGateway\", charset=\"UTF-8\"";
            await new ApiError(401, "The ops page needs the master key (user name anything, password the master key).", "invalid_request_error", "invalid_api_key")
            {
                LogReason = header.Length == 0 ? "missing_key" : "wrong_master_key",
            }.WriteAsync(context.HttpContext);

            // Results.Empty, not null: a null result is serialised as JSON onto the 401 already sent, and throws.
            return Results.Empty;
        }

        private static string? BasicPassword(string parameter)
        {
            try
            {
                var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(parameter));
                var colon = decoded.IndexOf(':', StringComparison.Ordinal);
                return colon < 0 ? null : decoded[(colon + 1)..];
            }
            catch (FormatException)
            {
                return null;
            }
        }
    }
}

/// <summary>
/// What the ops page shows, as JSON: per deployment its health and circuit, requests per second,
/// latency and time-to-first-token percentiles, error rate and today's spend; the routing config's
/// version and last reload; the state store's health.
/// </summary>
internal sealed class DashboardState(
    RoutingConfigManager config,
    IUsageQuery usage,
    TimeProvider timeProvider,
    IOptions<StateOptions> state,
    IOptions<AuthOptions> auth,
    GatewayTraffic traffic,
    IServiceProvider services)
{
    private static readonly TimeSpan SpendRefresh = TimeSpan.FromSeconds(10);
    private readonly Lock _gate = new();
    private IReadOnlyList<UsageRow> _spend = [];
    private IReadOnlyList<UsageRow> _byRoute = [];
    private long _spendAt;

    public async Task WriteAsync(HttpContext context)
    {
        var catalog = config.Current;
        var now = timeProvider.GetTimestamp();
        var (spend, byRoute) = await TodaysSpendAsync(context.RequestAborted);
        var redis = services.GetService<RedisConnection>();
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        await using (var json = new Utf8JsonWriter(context.Response.BodyWriter, JsonOutput.Options))
        {
            json.WriteStartObject();
            json.WriteString("generated_at", timeProvider.GetUtcNow());

            // Behind a load balancer each poll may reach another replica; rates and circuits are per replica.
            json.WriteString("instance", Environment.MachineName);
            json.WriteString("started_at", traffic.StartedAt);
            json.WriteString("auth", auth.Value.Mode == AuthMode.Keys ? "keys" : "none");
            json.WriteStartObject("state");
            json.WriteString("store", state.Value.UsesRedis ? "redis" : "in-memory");
            json.WriteString("health", redis is null ? "healthy" : redis.IsAvailable ? "healthy" : state.Value.FailurePolicy == RedisFailurePolicy.FailOpen ? "degraded" : "unhealthy");
            json.WriteEndObject();
            WriteConfig(json, catalog, config.LastReload);

            long requests = 0;
            long errors = 0;
            var inFlight = 0;
            json.WriteStartArray("deployments");
            foreach (var deployment in catalog.DeploymentList)
            {
                var live = deployment.State;
                var attempts = live.Attempts.Sum(60);
                var failed = live.Errors.Sum(60);
                requests += attempts;
                errors += failed;
                inFlight += live.InFlight;
                var latency = live.Latency.SnapshotAt(now);
                var row = spend.FirstOrDefault(r => r.Group == deployment.Name);
                json.WriteStartObject();
                json.WriteString("name", deployment.Name);
                json.WriteString("provider", deployment.Provider.Name);
                json.WriteString("kind", deployment.Provider.Kind);
                json.WriteString("tier", deployment.Tier.ToString().ToLowerInvariant());
                json.WriteString("model", deployment.UpstreamModel);
                if (deployment.Region is not null)
                {
                    json.WriteString("region", deployment.Region);
                }

                var circuit = live.Circuit.StatusAt(now);
                json.WriteString("circuit", circuit switch { CircuitStatus.Open => "open", CircuitStatus.HalfOpen => "half-open", _ => "closed" });
                json.WriteNumber("circuit_open_seconds", Math.Round(live.Circuit.OpenRemainingAt(now).TotalSeconds, 1));
                json.WriteNumber("cooling_down_seconds", Math.Round(live.CoolingRemainingAt(now).TotalSeconds, 1));
                json.WriteNumber("rate_limited_seconds", Math.Round(live.LimitedRemainingAt(now).TotalSeconds, 1));
                json.WriteString("health", Health(deployment, circuit, now));
                json.WriteNumber("in_flight", live.InFlight);
                if (deployment.Capacity is { } capacity)
                {
                    json.WriteNumber("capacity", capacity);
                }
                else
                {
                    json.WriteNull("capacity");
                }

                Routing.Signals.LoadJson.Write(json, deployment, timeProvider.GetUtcNow());
                WriteQuota(json, live.Quota.View());
                json.WriteNumber("requests_per_second", Math.Round(attempts / 60.0, 2));
                json.WriteNumber("error_rate", attempts == 0 ? 0 : Math.Round(failed / (double)attempts, 4));
                Ms(json, "latency_p50_ms", latency.DurationP50);
                Ms(json, "latency_p95_ms", latency.DurationP95);
                Ms(json, "ttft_p50_ms", latency.TtftP50);
                Ms(json, "ttft_p95_ms", latency.TtftP95);

                // Route objectives: the decayed TTFT estimate routing ranks by, at p99, with the load prediction.
                Routing.Objectives.LiveEstimate.Of(deployment, 99, live.Latency.Live.Now).Write(json, "ttft_live");
                json.WriteNumber("spend_today_usd", Math.Round(row?.CostUsd ?? 0, 6));
                json.WriteNumber("requests_today", row?.Requests ?? 0);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            var clientRequests = traffic.Requests.Sum(60);
            var clientFailures = traffic.Failures.Sum(60);
            json.WriteStartObject("totals");
            json.WriteNumber("requests_per_second", Math.Round(requests / 60.0, 2));
            json.WriteNumber("error_rate", requests == 0 ? 0 : Math.Round(errors / (double)requests, 4));
            json.WriteNumber("client_requests_per_second", Math.Round(clientRequests / 60.0, 2));
            json.WriteNumber("client_error_rate", clientRequests == 0 ? 0 : Math.Round(clientFailures / (double)clientRequests, 4));
            json.WriteNumber("in_flight", inFlight);
            json.WriteNumber("spend_today_usd", Math.Round(spend.Sum(r => r.CostUsd), 6));
            json.WriteEndObject();

            json.WriteStartArray("routes");
            foreach (var route in catalog.RouteList)
            {
                json.WriteStartObject();
                json.WriteString("name", route.Name);
                json.WriteString("strategy", route.StrategyName);
                if (route.Slo is { } slo)
                {
                    json.WriteString("slo", $"p{slo.Percentile} {(slo.Metric == LatencyMetric.Ttft ? "ttft" : "duration")} ≤ {Durations.Format(slo.Target)}");
                }

                json.WriteStartArray("targets");
                foreach (var target in route.IsAuto ? catalog.DeploymentList : route.Targets)
                {
                    json.WriteStringValue(target.Name);
                }

                json.WriteEndArray();
                WriteCache(json, route, byRoute);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    // Quotas: what the provider last said is left (net of what was sent since), or null when it has said nothing.
    private static void WriteQuota(Utf8JsonWriter json, Routing.Quotas.QuotaView? quota)
    {
        if (quota is null)
        {
            json.WriteNull("quota");
            return;
        }

        json.WriteStartObject("quota");
        Nullable(json, "requests_left", quota.RequestsLeft);
        Nullable(json, "requests_limit", quota.RequestsLimit);
        Nullable(json, "tokens_left", quota.TokensLeft);
        Nullable(json, "tokens_limit", quota.TokensLimit);
        json.WriteNumber("reset_seconds", Math.Round(quota.ResetIn.TotalSeconds, 1));
        json.WriteBoolean("learnt", quota.Learnt);
        json.WriteNumber("streak", quota.Streak);
        json.WriteEndObject();

        static void Nullable(Utf8JsonWriter json, string name, long? value)
        {
            if (value is { } v)
            {
                json.WriteNumber(name, v);
            }
            else
            {
                json.WriteNull(name);
            }
        }
    }

    // A route's response cache today: its hit ratio and what the hits saved; null when the route has no cache.
    private static void WriteCache(Utf8JsonWriter json, ModelRoute route, IReadOnlyList<UsageRow> byRoute)
    {
        if (route.Cache is null)
        {
            json.WriteNull("cache");
            return;
        }

        var row = byRoute.FirstOrDefault(r => r.Group == route.Name);
        var requests = row?.Requests ?? 0;
        var hits = row?.CacheHits ?? 0;
        json.WriteStartObject("cache");
        json.WriteNumber("requests_today", requests);
        json.WriteNumber("hits_today", hits);
        json.WriteNumber("hit_ratio", requests == 0 ? 0 : Math.Round(hits / (double)requests, 4));
        json.WriteNumber("saved_usd_today", Math.Round(row?.CacheSavedUsd ?? 0, 6));
        json.WriteEndObject();
    }

    private static string Health(Deployment deployment, CircuitStatus circuit, long now) => circuit switch
    {
        CircuitStatus.Open => "down",
        CircuitStatus.HalfOpen => "probing",
        _ when deployment.State.CoolingRemainingAt(now) > TimeSpan.Zero || deployment.State.LimitedRemainingAt(now) > TimeSpan.Zero => "limited",
        _ when deployment.Capacity is { } capacity && deployment.State.InFlight >= capacity => "saturated",
        _ => "healthy",
    };

    private static void WriteConfig(Utf8JsonWriter json, GatewayCatalog catalog, ReloadResult? last)
    {
        json.WriteStartObject("config");
        json.WriteNumber("version", catalog.Version);
        json.WriteString("source", catalog.Source);
        json.WriteString("loaded_at", catalog.LoadedAt);
        if (last is not null)
        {
            json.WriteStartObject("last_reload");
            json.WriteString("at", last.At);
            json.WriteBoolean("succeeded", last.Succeeded);
            json.WriteStartArray("errors");
            foreach (var error in last.Errors)
            {
                json.WriteStringValue(error.ToString());
            }

            json.WriteEndArray();
            json.WriteStartArray("warnings");
            foreach (var warning in last.Warnings)
            {
                json.WriteStringValue(warning.ToString());
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        json.WriteEndObject();
    }

    private static void Ms(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsNaN(value))
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteNumber(name, Math.Round(value, 1));
        }
    }

    // Today's spend per deployment, from the usage store (shared in Redis), refreshed every 10 seconds.
    // Today's usage by deployment (spend) and by route (cache hits), read at most every SpendRefresh.
    private async Task<(IReadOnlyList<UsageRow> ByDeployment, IReadOnlyList<UsageRow> ByRoute)> TodaysSpendAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_spendAt != 0 && timeProvider.GetElapsedTime(_spendAt) < SpendRefresh)
            {
                return (_spend, _byRoute);
            }
        }

        var today = DateOnly.FromDateTime(timeProvider.GetUtcNow().UtcDateTime);
        try
        {
            var rows = await usage.QueryAsync(new UsageFilter(today, today, UsageGrouping.Deployment), cancellationToken);
            var byRoute = await usage.QueryAsync(new UsageFilter(today, today, UsageGrouping.Model), cancellationToken);
            lock (_gate)
            {
                _spend = rows;
                _byRoute = byRoute;
                _spendAt = timeProvider.GetTimestamp();
            }

            return (rows, byRoute);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            return (_spend, _byRoute);
        }
    }
}
