using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Providers.Anthropic;
using ModelGateway.Providers.Gemini;
using ModelGateway.Providers.Media;
using ModelGateway.Wire;

namespace ModelGateway.Providers.VertexAI;

/// <summary>
/// Vertex AI's publisher models on a regional endpoint. Gemini models take the Gemini mapping at
/// <c>:generateContent</c> / <c>:streamGenerateContent?alt=sse</c>; Claude models take the Anthropic
/// mapping at <c>:rawPredict</c> / <c>:streamRawPredict</c>, with Vertex's <c>anthropic_version</c> in the
/// body and no <c>model</c>. Every attempt is signed with the current OAuth access token.
/// </summary>
internal sealed class VertexAIAdapter : IProviderAdapter
{
    /// <summary>The Messages API version Vertex AI takes in the body.</summary>
    public const string AnthropicVersion = "vertex-2023-10-16";

    // Vertex's version accepts temperature, top_p and top_k, as the 2023-06-01 header version does.
    private static readonly AnthropicSettings ClaudeRules = new(AnthropicSettings.DefaultVersion, []);

    private readonly VertexAISettings _settings;
    private readonly GoogleAccessTokens _tokens;
    private readonly GoogleTokenSigner _signer;
    private readonly ProviderServices _services;
    private readonly HttpMessageInvoker _invoker;
    private readonly string _publishers;
    private readonly KeyValuePair<string, string>[] _headers;

    public VertexAIAdapter(ProviderEndpoint provider, VertexAISettings settings, GoogleAccessTokens tokens, ProviderServices services)
    {
        _settings = settings;
        _tokens = tokens;
        _signer = new GoogleTokenSigner(tokens);
        _services = services;
        _invoker = services.HttpClients.Get(provider.ConnectTimeout);
        _publishers = $"{settings.Endpoint}/v1/projects/{settings.Project}/locations/{settings.Location}/publishers/";
        _headers = OpenAI.ProviderHeaders.Build(provider, credential: null);
    }

    public bool PassesThrough(WireFormat wire) => false;

    public async ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var deployment = request.Deployment;
        try
        {
            // Fetched (or refreshed) here, where a failure can be told apart from a network one; the signer then finds it cached.
            await _tokens.GetAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (GoogleCredentialException ex)
        {
            return UpstreamResponse.Refused(new UpstreamError(
                UpstreamErrorKind.Misconfigured,
                ApiError.BadGateway("The gateway is not configured correctly for this deployment.", "upstream_misconfigured"),
                SecretScrubber.Truncate(SecretScrubber.Scrub(ex.Message, deployment), 300)));
        }

        var claude = _settings.IsClaude(deployment.UpstreamModel);
        IReadOnlyDictionary<string, FetchedMedia> media;
        try
        {
            var urls = GeminiRequestMapper.UrlsToFetch(request.Canonical, claude ? static _ => false : GeminiRequestMapper.IsVertexFile);
            media = await ClientMedia.FetchAsync(urls, _services.MediaFetcher, deployment, cancellationToken).ConfigureAwait(false);
        }
        catch (MediaFetchException ex)
        {
            return ClientMedia.Refuse(ex);
        }

        string method;
        byte[] body;
        if (claude)
        {
            method = request.Stream ? "anthropic/models/{0}:streamRawPredict" : "anthropic/models/{0}:rawPredict";
            var message = AnthropicRequestMapper.Map(request.Canonical, deployment, ClaudeRules, request.Stream, out _);
            message.Model = null;
            message.AnthropicVersion = AnthropicVersion;
            InlineSources(message, media);
            body = AnthropicRequestMapper.Serialize(message);
        }
        else
        {
            method = request.Stream ? "google/models/{0}:streamGenerateContent?alt=sse" : "google/models/{0}:generateContent";
            body = GeminiRequestMapper.Serialize(GeminiRequestMapper.Map(request.Canonical, deployment, media));
        }

        var destination = new Uri(_publishers + string.Format(System.Globalization.CultureInfo.InvariantCulture, method, deployment.UpstreamModel));
        return await _services.Forwarder.SendAsync(request.Request, _invoker, _settings.Endpoint, destination, SplicedBody.Whole(body), _headers, _signer, cancellationToken).ConfigureAwait(false);
    }

    public UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment)
        => _settings.IsClaude(deployment.UpstreamModel) && !GoogleErrors.IsGoogleError(body)
            ? AnthropicErrors.Classify(response, body, deployment, _services.TimeProvider)

            // Vertex answers quota, authentication and routing errors in Google's shape, whichever publisher's model it serves.
            : GoogleErrors.Classify(response, body, deployment, _services.TimeProvider);

    public IStreamDecoder OpenStream(Stream body, UpstreamRequest request)
        => _settings.IsClaude(request.Deployment.UpstreamModel)
            ? new AnthropicStreamDecoder(body, request.Deployment, AnthropicAdapter.UsesJsonTool(request), _services.Options.MaxUpstreamEventBytes)
            : new GeminiStreamDecoder(body, request.Deployment, _services.Options.MaxUpstreamEventBytes);

    public ChatResponse ParseResponse(ReadOnlySpan<byte> body, UpstreamRequest request, out UpstreamError? error)
        => _settings.IsClaude(request.Deployment.UpstreamModel)
            ? AnthropicAdapter.ParseMessage(body, request, out error)
            : GeminiStreamDecoder.ReadWhole(body, request.Deployment, out error);

    // Claude on Vertex takes images and documents as base64 only: URL sources become the bytes fetched for them.
    private static void InlineSources(AnthropicRequest message, IReadOnlyDictionary<string, FetchedMedia> media)
    {
        if (media.Count == 0)
        {
            return;
        }

        foreach (var turn in message.Messages)
        {
            Inline(turn.Content, media);
        }
    }

    private static void Inline(List<AnthropicBlock> blocks, IReadOnlyDictionary<string, FetchedMedia> media)
    {
        foreach (var block in blocks)
        {
            var source = block switch
            {
                AnthropicImageBlock image => image.Source,
                AnthropicDocumentBlock document => document.Source,
                _ => null,
            };
            if (source is { Type: "url", Url: { } url } && media.TryGetValue(url, out var fetched))
            {
                source.Type = "base64";
                source.MediaType = fetched.MediaType;
                source.Data = Convert.ToBase64String(fetched.Bytes);
                source.Url = null;
            }
            else if (block is AnthropicToolResultBlock { Content: { } inner })
            {
                Inline(inner, media);
            }
        }
    }
}
