using System.Text.Json;
using ModelGateway.Configuration;
using ModelGateway.State;
using ModelGateway.Wire;

namespace ModelGateway.Endpoints;

/// <summary>
/// <c>GET /v1/models</c> and <c>GET /v1/models/{id}</c> in OpenAI's list shape: the route names a
/// caller may ask for, with extra fields for the context window and what the route can do.
/// </summary>
internal sealed class ModelsEndpoint(RoutingConfigManager config)
{
    public async Task ListAsync(HttpContext context)
    {
        var catalog = config.Current;
        var caller = context.Features.Get<CallerIdentity>() ?? CallerIdentity.Anonymous;
        context.Response.ContentType = "application/json";
        await using (var json = new Utf8JsonWriter(context.Response.BodyWriter, JsonOutput.Options))
        {
            json.WriteStartObject();
            json.WriteString("object"u8, "list"u8);
            json.WriteStartArray("data"u8);
            foreach (var route in catalog.RouteList)
            {
                if (caller.MayUseModel(route.Name))
                {
                    WriteModel(json, route, catalog);
                }
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    public async Task GetAsync(HttpContext context, string id)
    {
        var catalog = config.Current;
        var caller = context.Features.Get<CallerIdentity>() ?? CallerIdentity.Anonymous;
        if (!catalog.Routes.TryGetValue(id, out var route) || !caller.MayUseModel(route.Name))
        {
            await ApiError.ModelNotFound(id).WriteAsync(context);
            return;
        }

        context.Response.ContentType = "application/json";
        await using (var json = new Utf8JsonWriter(context.Response.BodyWriter, JsonOutput.Options))
        {
            WriteModel(json, route, catalog);
        }

        await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    private static void WriteModel(Utf8JsonWriter json, ModelRoute route, GatewayCatalog catalog)
    {
        json.WriteStartObject();
        json.WriteString("id"u8, route.Name);
        json.WriteString("object"u8, "model"u8);
        json.WriteNumber("created"u8, catalog.LoadedAt.ToUnixTimeSeconds());
        json.WriteString("owned_by"u8, "modelgateway"u8);
        if (route.Description is not null)
        {
            json.WriteString("description"u8, route.Description);
        }

        if (route.MaxContextWindow is { } window)
        {
            json.WriteNumber("context_window"u8, window);
        }
        else
        {
            json.WriteNull("context_window"u8);
        }

        json.WriteStartArray("capabilities"u8);
        foreach (var (flag, name) in CapabilityNames)
        {
            if ((route.Capabilities & flag) != 0)
            {
                json.WriteStringValue(name);
            }
        }

        json.WriteEndArray();
        json.WriteString("routing_strategy"u8, route.StrategyName);
        var members = route.IsAuto ? catalog.DeploymentList : route.Targets;
        json.WriteNumber("deployments"u8, members.Length);
        json.WriteStartArray("deployment_figures"u8);
        foreach (var deployment in members)
        {
            WriteFigures(json, deployment);
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>A deployment's size and prices, and where each figure came from (routing file or model catalog).</summary>
    public static void WriteFigures(Utf8JsonWriter json, Deployment deployment)
    {
        json.WriteStartObject();
        json.WriteString("deployment"u8, deployment.Name);
        if (deployment.KnownModel is { } known)
        {
            json.WriteString("known_model"u8, known);
        }

        WriteFigureValues(json, deployment);
        json.WriteEndObject();
    }

    /// <summary>The figures and their sources, inside an object the caller opened.</summary>
    public static void WriteFigureValues(Utf8JsonWriter json, Deployment deployment)
    {
        if (deployment.ContextWindow is { } window)
        {
            json.WriteNumber("context_window"u8, window);
        }

        if (deployment.MaxOutputTokens is { } maxOutput)
        {
            json.WriteNumber("max_output_tokens"u8, maxOutput);
        }

        var pricing = deployment.Pricing;
        json.WriteStartObject("pricing_per_million"u8);
        json.WriteNumber("input"u8, Math.Round(pricing.InputPerToken * 1_000_000, 6));
        json.WriteNumber("output"u8, Math.Round(pricing.OutputPerToken * 1_000_000, 6));
        json.WriteNumber("cache_read"u8, Math.Round(pricing.CacheReadPerToken * 1_000_000, 6));
        json.WriteNumber("cache_write"u8, Math.Round(pricing.CacheWritePerToken * 1_000_000, 6));
        json.WriteNumber("reasoning"u8, Math.Round(pricing.ReasoningPerToken * 1_000_000, 6));
        if (pricing.PerHour > 0)
        {
            json.WriteNumber("per_hour"u8, pricing.PerHour);
        }

        json.WriteEndObject();
        json.WriteStartObject("sources"u8);
        foreach (var (figure, source) in deployment.FigureSources)
        {
            json.WriteString(figure, source);
        }

        json.WriteEndObject();
    }

    private static readonly (Capabilities Flag, string Name)[] CapabilityNames =
    [
        (Capabilities.Chat, "chat"),
        (Capabilities.Completions, "completions"),
        (Capabilities.Embeddings, "embeddings"),
        (Capabilities.Tools, "tools"),
        (Capabilities.Vision, "vision"),
        (Capabilities.JsonSchema, "json_schema"),
        (Capabilities.Prefill, "prefill"),
        (Capabilities.Images, "images"),
        (Capabilities.Audio, "audio"),
        (Capabilities.Moderations, "moderations"),
        (Capabilities.Files, "files"),
        (Capabilities.Batches, "batches"),
    ];

    public static IEnumerable<string> Names(Capabilities capabilities)
    {
        foreach (var (flag, name) in CapabilityNames)
        {
            if ((capabilities & flag) != 0)
            {
                yield return name;
            }
        }
    }
}
