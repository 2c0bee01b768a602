using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Wire;

namespace ModelGateway.Providers;

/// <summary>A wire format spoken by a client protocol or a provider. Equal wires pass bytes through.</summary>
internal enum WireFormat : byte
{
    None,

    /// <summary>OpenAI's chat completions, legacy completions and embeddings.</summary>
    OpenAIChat,

    /// <summary>Anthropic's Messages API.</summary>
    AnthropicMessages,

    /// <summary>OpenAI's Responses API.</summary>
    OpenAIResponses,
}

/// <summary>
/// Speaks one provider's protocol for the gateway: sends an attempt (passing the client's bytes
/// through when the client speaks the provider's own wire, translating the canonical request
/// otherwise), decodes translated answers into canonical events, and classifies the provider's errors
/// into what resilience needs. One adapter per provider entry of the routing file.
/// </summary>
internal interface IProviderAdapter
{
    /// <summary>Whether a client speaking <paramref name="wire"/> is served byte for byte, with only <c>model</c> spliced.</summary>
    bool PassesThrough(WireFormat wire);

    /// <summary>Sends one attempt. Transport failures are results, not exceptions.</summary>
    ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken);

    /// <summary>Classifies a non-2xx answer from its status, headers and (up to 64 KB of) body.</summary>
    UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment);

    /// <summary>Translated streams: a decoder over the upstream's event stream.</summary>
    IStreamDecoder OpenStream(Stream body, UpstreamRequest request);

    /// <summary>Translated non-streamed answers: the whole body, or the error it carries.</summary>
    ChatResponse ParseResponse(ReadOnlySpan<byte> body, UpstreamRequest request, out UpstreamError? error);

    /// <summary>
    /// Resilience: the cheap request that tests whether a deployment whose circuit is open has recovered.
    /// By default one token of chat (or a completion, or an embedding), sent and classified like any attempt.
    /// </summary>
    ProbeRequest Probe(Deployment deployment) => ProbeRequest.For(deployment);

    /// <summary>
    /// Translated embeddings (an OpenAI embeddings client on a provider with its own embeddings wire): the
    /// whole body, or the error it carries. Asked only of kinds that translate embeddings, which then also
    /// write their own request for them in <see cref="SendAsync"/> (<see cref="GatewayRequest.Embeddings"/>).
    /// </summary>
    EmbeddingResponse ParseEmbeddings(ReadOnlySpan<byte> body, UpstreamRequest request, out UpstreamError? error)
        => throw new NotSupportedException("This provider kind does not translate embeddings.");

    /// <summary>
    /// Quotas: what the response's headers say is left of the deployment's quota (on success and on 429).
    /// Runs on every response: return at once, allocating nothing, when the provider's headers are absent.
    /// </summary>
    Routing.Quotas.QuotaReading ReadQuota(UpstreamResponse response) => default;
}

/// <summary>
/// One attempt's input: the client's request, the deployment chosen for it, and whether it passes
/// through or is translated from the canonical request.
/// </summary>
internal sealed class UpstreamRequest(GatewayRequest request, Deployment deployment, bool passThrough)
{
    public GatewayRequest Request { get; } = request;

    public Deployment Deployment { get; } = deployment;

    /// <summary>True when the client's bytes go upstream with only <c>model</c> spliced.</summary>
    public bool PassThrough { get; } = passThrough;

    /// <summary>Whether the client asked for a stream (the upstream is asked for one too).</summary>
    public bool Stream => Request.Info.Stream;

    /// <summary>Ask the upstream for the final usage chunk even if the client did not.</summary>
    public bool AskForStreamUsage { get; init; }

    /// <summary>For continuation: assistant text the upstream should continue from, as a JSON string literal.</summary>
    public ReadOnlyMemory<byte> PrefillJson { get; init; }

    public bool IsContinuation => !PrefillJson.IsEmpty;

    /// <summary>The canonical request, with the continuation's prefill appended; translated attempts only.</summary>
    public ChatRequest Canonical => _canonical ??= BuildCanonical();

    private ChatRequest? _canonical;

    private ChatRequest BuildCanonical()
    {
        var canonical = Request.Canonical;
        if (canonical.MaxTokens > Deployment.MaxOutputTokens)
        {
            // Routing kept this deployment because the client's max_tokens is only a ceiling (Anthropic's): clamp it.
            canonical = canonical.WithMaxTokens(Deployment.MaxOutputTokens.Value);
        }

        return IsContinuation ? canonical.WithAssistantPrefill(JsonLiteral.Decode(PrefillJson.Span)) : canonical;
    }
}
