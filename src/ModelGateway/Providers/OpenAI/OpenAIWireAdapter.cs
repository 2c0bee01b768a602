using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;

namespace ModelGateway.Providers.OpenAI;

/// <summary>
/// What every provider speaking OpenAI's chat wire shares (OpenAI, Azure OpenAI, OpenAI-compatible
/// servers, the simulator): OpenAI clients pass through with <c>model</c> spliced; other clients'
/// requests are written as chat completions and the chunks decoded back; errors read OpenAI's shape.
/// </summary>
internal abstract class OpenAIWireAdapter(TimeProvider timeProvider, GatewayOptions options) : IProviderAdapter
{
    protected TimeProvider TimeProvider { get; } = timeProvider;

    public virtual bool PassesThrough(WireFormat wire) => wire == WireFormat.OpenAIChat;

    public abstract ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken);

    public UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment)
        => OpenAIErrors.Classify(response, body, deployment, TimeProvider);

    /// <summary>Quotas: <c>x-ratelimit-*</c>, sent by OpenAI, Azure OpenAI and most OpenAI-compatible servers.</summary>
    public Routing.Quotas.QuotaReading ReadQuota(UpstreamResponse response) => Routing.Quotas.QuotaHeaders.ReadOpenAI(response);

    public IStreamDecoder OpenStream(Stream body, UpstreamRequest request) => new OpenAIChunkDecoder(body, request.Deployment, options.MaxUpstreamEventBytes);

    public ChatResponse ParseResponse(ReadOnlySpan<byte> body, UpstreamRequest request, out UpstreamError? error)
        => OpenAIChatWire.ReadResponse(body, request.Deployment, out error);

    /// <summary>The client's body with <c>model</c> spliced, or the canonical request written as chat completions.</summary>
    protected static SplicedBody BuildBody(UpstreamRequest call) => call.PassThrough
        ? call.Request.Protocol.PassThroughBody(call)
        : SplicedBody.Whole(OpenAIChatWire.WriteRequest(call.Canonical, call.Deployment, call.Stream, includeUsage: true));
}

/// <summary>
/// OpenAI and every server that speaks its API (vLLM, Ollama, TGI, LM Studio, Groq...): the key goes
/// in <c>Authorization: Bearer</c>.
/// </summary>
internal sealed class OpenAIAdapter : OpenAIWireAdapter, IRawForwardingAdapter
{
    private readonly UpstreamForwarder _forwarder;
    private readonly HttpMessageInvoker _invoker;
    private readonly string _prefix;
    private readonly Uri _chat;
    private readonly Uri _completions;
    private readonly Uri _embeddings;
    private readonly Uri _responses;
    private readonly bool _servesResponses;
    private readonly KeyValuePair<string, string>[] _headers;

    // servesResponses is true for OpenAI itself: Responses API clients pass through to /responses.
    // OpenAI-compatible servers speak chat completions (their Responses support varies), so those clients are translated.
    public OpenAIAdapter(ProviderEndpoint provider, UpstreamForwarder forwarder, HttpMessageInvoker invoker, TimeProvider timeProvider, GatewayOptions options, bool servesResponses = false)
        : base(timeProvider, options)
    {
        _servesResponses = servesResponses;
        _forwarder = forwarder;
        _invoker = invoker;
        var baseUrl = provider.BaseUri!.AbsoluteUri.TrimEnd('/');
        _prefix = baseUrl;
        _chat = new Uri(baseUrl + "/chat/completions");
        _completions = new Uri(baseUrl + "/completions");
        _embeddings = new Uri(baseUrl + "/embeddings");
        _responses = new Uri(baseUrl + "/responses");
        _headers = ProviderHeaders.Build(provider, provider.ApiKey is { } key ? new("Authorization", "Bearer " + key.Value) : null);
    }

    public override bool PassesThrough(WireFormat wire) => wire == WireFormat.OpenAIChat || (_servesResponses && wire == WireFormat.OpenAIResponses);

    public override ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var destination = request.PassThrough && request.Request.Protocol.Wire == WireFormat.OpenAIResponses ? _responses : request.Request.Operation switch
        {
            Wire.Operation.ChatCompletions => _chat,
            Wire.Operation.Completions => _completions,
            _ => _embeddings,
        };
        return _forwarder.SendAsync(request.Request, _invoker, _prefix, destination, BuildBody(request), _headers, signer: null, cancellationToken);
    }

    public Task<HttpResponseMessage> ForwardAsync(HttpRequestMessage message, CancellationToken cancellationToken)
    {
        message.RequestUri = new Uri(_prefix + "/" + message.RequestUri!.OriginalString);
        ProviderHeaders.Apply(message, _headers);
        return _invoker.SendAsync(message, cancellationToken);
    }
}

/// <summary>The credential header plus any extra headers a provider entry declares.</summary>
internal static class ProviderHeaders
{
    public static KeyValuePair<string, string>[] Build(ProviderEndpoint provider, KeyValuePair<string, string>? credential, params KeyValuePair<string, string>[] more)
    {
        var headers = new List<KeyValuePair<string, string>>(provider.ExtraHeaders.Length + 1 + more.Length);
        if (credential is { } value)
        {
            headers.Add(value);
        }

        headers.AddRange(more);
        foreach (var (name, secret) in provider.ExtraHeaders)
        {
            headers.Add(new(name, secret.Value));
        }

        return [.. headers];
    }

    /// <summary>Puts the provider's headers on a request, replacing any the client sent under those names.</summary>
    public static void Apply(HttpRequestMessage message, KeyValuePair<string, string>[] headers)
    {
        foreach (var (name, value) in headers)
        {
            message.Headers.Remove(name);
            message.Headers.TryAddWithoutValidation(name, value);
        }
    }
}
