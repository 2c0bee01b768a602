using ModelGateway.Forwarding;
using ModelGateway.Protocols.Anthropic;
using ModelGateway.Wire;

namespace ModelGateway.Endpoints;

/// <summary>Maps Anthropic's Messages API onto the gateway (Anthropic SDKs, Claude Code).</summary>
internal static class AnthropicEndpoints
{
    private static readonly string[] KnownPaths = ["/v1/messages", "/v1/messages/count_tokens"];

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

    public static IEndpointRouteBuilder MapAnthropicEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var v1 = endpoints.MapGroup("/v1/messages");

        // ?beta=true (Claude Code, the SDKs' beta namespace) changes nothing here: betas travel in anthropic-beta.
        v1.MapPost(string.Empty, static context =>
        {
            // Anthropic SDKs surface this as the response's request id.
            context.Response.Headers["request-id"] = context.TraceIdentifier;
            return context.RequestServices.GetRequiredService<CompletionHandler>().HandleAsync(context, AnthropicMessagesProtocol.Instance, Operation.ChatCompletions);
        });
        v1.MapPost("/count_tokens", static context => CountTokensEndpoint.HandleAsync(context));
        return endpoints;
    }
}
