using ModelGateway.Protocols.Anthropic;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Protocols;

/// <summary>
/// Which client API a path belongs to, for the answers written before (or outside) a handler: a missing
/// key, an unknown path under <c>/v1/messages</c>, an unexpected failure. Each client gets its own API's
/// error shape, whoever refuses it.
/// </summary>
internal static class ClientProtocols
{
    public static ClientProtocol ForPath(PathString path)
        => path.StartsWithSegments("/v1/messages", StringComparison.OrdinalIgnoreCase) ? AnthropicMessagesProtocol.Instance : OpenAIChatProtocol.Instance;

    /// <summary>Writes <paramref name="error"/> as the whole response, in the shape of the API the request's path belongs to.</summary>
    public static Task WriteErrorAsync(HttpContext context, ApiError error) => ForPath(context.Request.Path).WriteErrorAsync(context, error);
}
