using System.Buffers;
using System.Text.Json;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Routing;
using ModelGateway.State;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Anthropic;

/// <summary>
/// <c>POST /v1/messages/count_tokens</c>, answered by the gateway's own token estimator for the route's
/// first deployment (exact for OpenAI tokenizers, the cl100k count plus a margin for other families),
/// whatever serves the route. It costs no upstream call and no rate-limit budget, and works for routes
/// no Anthropic deployment serves; for Claude it is an estimate, not Anthropic's count.
/// </summary>
internal static class CountTokensEndpoint
{
    public static async Task HandleAsync(HttpContext context)
    {
        context.Response.Headers["request-id"] = context.TraceIdentifier;
        var services = context.RequestServices;
        var timeProvider = services.GetRequiredService<TimeProvider>();
        using var request = new GatewayRequest(context, AnthropicMessagesProtocol.CountTokens, Operation.ChatCompletions, context.TraceIdentifier, timeProvider.GetTimestamp())
        {
            Caller = context.Features.Get<CallerIdentity>() ?? CallerIdentity.Anonymous,
        };
        if (await services.GetRequiredService<RequestIntake>().AcceptAsync(request).ConfigureAwait(false) is { } refused)
        {
            await AnthropicErrorShape.WriteAsync(context, refused).ConfigureAwait(false);
            return;
        }

        var route = request.Route!;
        var deployment = route.Targets.Length > 0 ? route.Targets[0] : null;
        var estimator = services.GetRequiredService<TokenEstimator>();
        var tokens = deployment is null || deployment.Tokenizer == TokenizerKind.Bytes
            ? TokenEstimator.Estimate(request.Info)
            : estimator.Count(request, deployment.Tokenizer);

        var body = new ArrayBufferWriter<byte>(32);
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartObject();
            json.WriteNumber("input_tokens"u8, tokens);
            json.WriteEndObject();
        }

        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.WrittenCount;
        await context.Response.Body.WriteAsync(body.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }
}
