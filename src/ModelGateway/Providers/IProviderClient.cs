using ModelGateway.Configuration;
using ModelGateway.Forwarding;

namespace ModelGateway.Providers;

/// <summary>
/// Speaks one provider's protocol for one attempt: builds the upstream request from the client's,
/// sends it, and hands back the answer with an OpenAI-shaped body. A translating provider
/// (Anthropic Messages, Gemini, Bedrock Converse) rewrites the body on the way out and wraps the
/// response body in a translator on the way back; the relay downstream only ever sees OpenAI's shape.
/// </summary>
internal interface IProviderClient
{
    ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken);
}

/// <summary>One attempt's input: the client's request, the deployment chosen for it, and what to ask for.</summary>
internal sealed class UpstreamRequest(GatewayRequest request, Deployment deployment)
{
    public GatewayRequest Request { get; } = request;
    public Deployment Deployment { get; } = deployment;

    /// <summary>Ask the upstream for the final usage chunk even if the client did not.</summary>
    public bool AskForStreamUsage { get; init; }

    /// <summary>For continuation: assistant text the upstream should continue from, as a JSON string literal.</summary>
    public ReadOnlyMemory<byte> PrefillJson { get; init; }

    public bool IsContinuation => !PrefillJson.IsEmpty;
}
