using ModelGateway.Forwarding;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Endpoints;

/// <summary>Maps OpenAI's API surface onto the gateway.</summary>
internal static class OpenAIEndpoints
{
    private static readonly string[] KnownPaths = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/route/explain", "/v1/responses"];

    /// <summary>Whether a path the router did not match exists with another method (405, not 404).</summary>
    public static bool IsKnownPath(PathString path)
    {
        foreach (var known in KnownPaths)
        {
            if (path.Equals(known, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    public static IEndpointRouteBuilder MapOpenAIEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var v1 = endpoints.MapGroup("/v1");
        v1.MapPost("/chat/completions", static context => context.RequestServices.GetRequiredService<CompletionHandler>().HandleAsync(context, OpenAIChatProtocol.Instance, Operation.ChatCompletions));
        v1.MapPost("/completions", static context => context.RequestServices.GetRequiredService<CompletionHandler>().HandleAsync(context, OpenAIChatProtocol.Instance, Operation.Completions));
        v1.MapPost("/embeddings", static context => context.RequestServices.GetRequiredService<CompletionHandler>().HandleAsync(context, OpenAIChatProtocol.Instance, Operation.Embeddings));
        v1.MapGet("/models", static context => context.RequestServices.GetRequiredService<ModelsEndpoint>().ListAsync(context));
        v1.MapGet("/models/{**id}", static context => context.RequestServices.GetRequiredService<ModelsEndpoint>().GetAsync(context, (string)context.Request.RouteValues["id"]!));
        v1.MapPost("/route/explain", static context => context.RequestServices.GetRequiredService<RouteExplainEndpoint>().ExplainAsync(context));
        v1.MapResponsesEndpoints();
        v1.MapForwardedEndpoints();
        return endpoints;
    }
}
