using System.Text.Json;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using ModelGateway.Configuration;
using ModelGateway.Routing;

namespace ModelGateway.Endpoints;

/// <summary>Ready when a routing catalog is serving.</summary>
internal sealed class RoutingConfigHealthCheck(RoutingConfigManager config) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!config.IsLoaded)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("the routing config is not loaded"));
        }

        var last = config.LastReload;
        var data = new Dictionary<string, object> { ["version"] = config.Current.Version, ["source"] = config.Current.Source };
        return Task.FromResult(last is { Succeeded: false }
            ? HealthCheckResult.Healthy($"serving v{config.Current.Version}; the last edit was refused", data)
            : HealthCheckResult.Healthy($"serving v{config.Current.Version}", data));
    }
}

/// <summary>Writes health reports as a small JSON document.</summary>
internal static class HealthResponse
{
    public static async Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter, Wire.JsonOutput.Options);
        json.WriteStartObject();
        json.WriteString("status", report.Status.ToString().ToLowerInvariant());
        json.WriteStartObject("checks");
        foreach (var (name, entry) in report.Entries)
        {
            json.WriteStartObject(name);
            json.WriteString("status", entry.Status.ToString().ToLowerInvariant());
            if (entry.Description is not null)
            {
                json.WriteString("description", entry.Description);
            }

            json.WriteEndObject();
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }
}

/// <summary>
/// With <c>Gateway:PreloadTokenizers</c>, loads the vocabularies the configured deployments use, off the
/// request path. Without it they load on first use: most requests never need an exact count.
/// </summary>
internal sealed class TokenizerWarmUp(TokenEstimator tokens, RoutingConfigManager config, GatewayOptions options) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.PreloadTokenizers)
        {
            return Task.CompletedTask;
        }

        var kinds = new HashSet<TokenizerKind>();
        foreach (var deployment in config.Current.DeploymentList)
        {
            kinds.Add(deployment.Tokenizer);
        }

        return Task.Run(() => tokens.WarmUp(kinds), stoppingToken);
    }
}
