using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Providers.Media;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Gemini;

/// <summary>
/// The Gemini API (Google AI Studio). No client protocol speaks Gemini's wire, so every request is
/// translated: chat as <c>generateContent</c> / <c>streamGenerateContent?alt=sse</c>, embeddings as
/// <c>batchEmbedContents</c>; answers and errors are decoded back into canonical ones.
/// </summary>
internal sealed class GeminiAdapter : IProviderAdapter
{
    private readonly ProviderServices _services;
    private readonly HttpMessageInvoker _invoker;
    private readonly string _prefix;
    private readonly string _models;
    private readonly KeyValuePair<string, string>[] _headers;

    public GeminiAdapter(ProviderEndpoint provider, ProviderServices services)
    {
        _services = services;
        _invoker = services.HttpClients.Get(provider.ConnectTimeout);
        var settings = provider.SettingsAs<GeminiSettings>();

        // SDKs take the host as the base URL; an admin who wrote .../v1beta means the same thing.
        var baseUrl = provider.BaseUri!.AbsoluteUri.TrimEnd('/');
        foreach (var version in GeminiSettings.Versions)
        {
            if (baseUrl.EndsWith("/" + version, StringComparison.Ordinal))
            {
                baseUrl = baseUrl[..^(version.Length + 1)];
                break;
            }
        }

        _prefix = baseUrl;
        _models = $"{baseUrl}/{settings.ApiVersion}/";
        _headers = OpenAI.ProviderHeaders.Build(provider, new("x-goog-api-key", provider.ApiKey?.Value ?? string.Empty));
    }

    public bool PassesThrough(WireFormat wire) => false;

    public async ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var deployment = request.Deployment;
        var model = ModelPath(deployment.UpstreamModel);
        Uri destination;
        byte[] body;
        if (request.Request.Operation == Operation.Embeddings)
        {
            destination = new Uri(_models + model + ":batchEmbedContents");
            body = GeminiRequestMapper.MapEmbeddings(request.Request.Embeddings, model);
        }
        else
        {
            IReadOnlyDictionary<string, FetchedMedia> media;
            try
            {
                media = await ClientMedia.FetchAsync(GeminiRequestMapper.UrlsToFetch(request.Canonical, GeminiRequestMapper.IsGeminiFile), _services.MediaFetcher, deployment, cancellationToken).ConfigureAwait(false);
            }
            catch (MediaFetchException ex)
            {
                return ClientMedia.Refuse(ex);
            }

            destination = new Uri(_models + model + (request.Stream ? ":streamGenerateContent?alt=sse" : ":generateContent"));
            body = GeminiRequestMapper.Serialize(GeminiRequestMapper.Map(request.Canonical, deployment, media));
        }

        return await _services.Forwarder.SendAsync(request.Request, _invoker, _prefix, destination, SplicedBody.Whole(body), _headers, signer: null, cancellationToken).ConfigureAwait(false);
    }

    public UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment)
        => GoogleErrors.Classify(response, body, deployment, _services.TimeProvider);

    public IStreamDecoder OpenStream(Stream body, UpstreamRequest request)
        => new GeminiStreamDecoder(body, request.Deployment, _services.Options.MaxUpstreamEventBytes);

    public ChatResponse ParseResponse(ReadOnlySpan<byte> body, UpstreamRequest request, out UpstreamError? error)
        => GeminiStreamDecoder.ReadWhole(body, request.Deployment, out error);

    public EmbeddingResponse ParseEmbeddings(ReadOnlySpan<byte> body, UpstreamRequest request, out UpstreamError? error)
        => ReadEmbeddings(body, request.Request.Embeddings.Inputs.Count, request.Deployment, out error);

    /// <summary>A <c>BatchEmbedContentsResponse</c>: one vector per input, in order. Gemini reports no token counts for it.</summary>
    public static EmbeddingResponse ReadEmbeddings(ReadOnlySpan<byte> body, int inputs, Deployment deployment, out UpstreamError? error)
    {
        error = null;
        if (GoogleErrors.IsGoogleError(body))
        {
            error = GoogleErrors.InBand(body, deployment);
            return new EmbeddingResponse { Vectors = [] };
        }

        var parsed = JsonSerializer.Deserialize(body, GeminiJsonContext.Default.GeminiBatchEmbedResponse);
        var vectors = parsed?.Embeddings;
        if (vectors is null || vectors.Count != inputs)
        {
            throw new InvalidDataException($"The answer has {vectors?.Count ?? 0} embeddings for {inputs} inputs.");
        }

        return new EmbeddingResponse { Vectors = [.. vectors.Select(v => v.Values)] };
    }

    /// <summary><c>models/{model}</c>, unless the admin named a resource of another kind (<c>tunedModels/...</c>).</summary>
    public static string ModelPath(string model) => model.Contains('/', StringComparison.Ordinal) ? model : "models/" + model;
}
