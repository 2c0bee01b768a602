using System.Text;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Providers.Media;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Bedrock;

/// <summary>
/// AWS Bedrock Runtime's Converse and ConverseStream. No client speaks Converse, so every request is
/// translated: the canonical request is written as a Converse body, signed with SigV4 per attempt, and
/// the binary event stream decoded back into canonical events. Image and document URLs are fetched
/// through the media fetcher (which refuses unless an admin allowed it), since Converse takes bytes only.
/// </summary>
internal sealed class BedrockAdapter : IProviderAdapter
{
    private const string Converse = "converse";
    private const string ConverseStream = "converse-stream";

    private readonly UpstreamForwarder _forwarder;
    private readonly HttpMessageInvoker _invoker;
    private readonly TimeProvider _timeProvider;
    private readonly GatewayOptions _options;
    private readonly IMediaFetcher _mediaFetcher;
    private readonly BedrockSettings _settings;
    private readonly AwsCredentialProvider _credentials;
    private readonly string _prefix;
    private readonly string _basePath;
    private readonly KeyValuePair<string, string>[] _headers;
    private readonly KeyValuePair<string, string>[] _streamHeaders;

    public BedrockAdapter(ProviderEndpoint provider, ProviderServices services)
    {
        _forwarder = services.Forwarder;
        _invoker = services.HttpClients.Get(provider.ConnectTimeout);
        _timeProvider = services.TimeProvider;
        _options = services.Options;
        _mediaFetcher = services.MediaFetcher;
        _settings = provider.SettingsAs<BedrockSettings>();
        _credentials = new AwsCredentialProvider(_settings);

        var baseUrl = provider.BaseUri!;
        _prefix = baseUrl.GetLeftPart(UriPartial.Authority);
        _basePath = baseUrl.AbsolutePath.TrimEnd('/');
        _headers = OpenAI.ProviderHeaders.Build(provider, null, new KeyValuePair<string, string>("accept", "application/json"));
        _streamHeaders = OpenAI.ProviderHeaders.Build(provider, null, new KeyValuePair<string, string>("accept", "application/vnd.amazon.eventstream"));
    }

    public bool PassesThrough(WireFormat wire) => false;

    public async ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var deployment = request.Deployment;
        var dto = BedrockRequestMapper.Map(request.Canonical, deployment, out _, out var pending);
        foreach (var media in pending)
        {
            // A refused or failed fetch throws MediaFetchException: the executor answers the client's 400 with its code.
            BedrockRequestMapper.Fill(media, await _mediaFetcher.FetchAsync(media.Url, media.Kind, deployment, cancellationToken).ConfigureAwait(false));
        }

        Amazon.Runtime.ImmutableCredentials credentials;
        try
        {
            credentials = await _credentials.GetAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (AwsCredentialException ex)
        {
            throw new UpstreamErrorException(new UpstreamError(UpstreamErrorKind.Misconfigured,
                ApiError.BadGateway("The gateway is not configured correctly for this deployment.", "upstream_misconfigured"),
                SecretScrubber.Truncate(SecretScrubber.Scrub(ex.Message, deployment), 300)));
        }

        var body = BedrockRequestMapper.Serialize(dto);
        var operation = request.Stream ? ConverseStream : Converse;
        var model = deployment.UpstreamModel;

        // The model id is one path segment: an inference profile's dots and colon, or an ARN's slashes, are escaped.
        var destination = new Uri($"{_prefix}{_basePath}/model/{Uri.EscapeDataString(model)}/{operation}");
        var signer = new BedrockRequestSigner(credentials, _settings.Region, _basePath, model, operation, body, _timeProvider);
        return await _forwarder.SendAsync(request.Request, _invoker, _prefix, destination, SplicedBody.Whole(body), request.Stream ? _streamHeaders : _headers, signer, cancellationToken)
            .ConfigureAwait(false);
    }

    public UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment)
        => BedrockErrors.Classify(response, body, deployment, _timeProvider);

    public IStreamDecoder OpenStream(Stream body, UpstreamRequest request)
        => new BedrockStreamDecoder(body, request.Deployment, UsesJsonTool(request), _options.MaxUpstreamEventBytes);

    public ChatResponse ParseResponse(ReadOnlySpan<byte> body, UpstreamRequest request, out UpstreamError? error)
    {
        error = null;
        var answer = JsonSerializer.Deserialize(body, BedrockJsonContext.Default.ConverseResponse);
        if (answer?.Output?.Message is not { } message)
        {
            throw new InvalidDataException("The body is not a Converse answer.");
        }

        var jsonTool = UsesJsonTool(request);
        var text = new StringBuilder();
        var reasoning = new StringBuilder();
        string? signature = null;
        var calls = new List<ToolCallResult>();
        foreach (var block in message.Content)
        {
            if (block.Text is { } t)
            {
                text.Append(t);
            }
            else if (block.ReasoningContent?.ReasoningText is { } thinking)
            {
                reasoning.Append(thinking.Text);
                signature = thinking.Signature ?? signature;
            }
            else if (block.ToolUse is { } tool)
            {
                var input = tool.Input.ValueKind == JsonValueKind.Undefined ? "{}" : tool.Input.GetRawText();
                if (jsonTool && tool.Name == BedrockRequestMapper.JsonToolName)
                {
                    text.Append(input);
                }
                else
                {
                    calls.Add(new ToolCallResult(tool.ToolUseId, tool.Name, input));
                }
            }
        }

        return new ChatResponse
        {
            Model = request.Deployment.UpstreamModel,
            Text = text.ToString(),
            Reasoning = reasoning.Length > 0 ? reasoning.ToString() : null,
            ReasoningSignature = signature,
            ToolCalls = calls,
            Finish = BedrockErrors.MapStopReason(answer.StopReason, jsonTool),
            Usage = ToUsage(answer.Usage),
        };
    }

    /// <summary>Canonical input is Bedrock's input plus its cache reads and writes.</summary>
    public static TokenUsage ToUsage(BedrockUsage? usage)
    {
        if (usage is null)
        {
            return default;
        }

        var read = usage.CacheReadInputTokens ?? 0;
        var write = usage.CacheWriteInputTokens ?? 0;
        return new TokenUsage
        {
            Input = (usage.InputTokens ?? 0) + read + write,
            CacheRead = read,
            CacheWrite = write,
            Output = usage.OutputTokens ?? 0,
            Reported = true,
        };
    }

    private static bool UsesJsonTool(UpstreamRequest request)
        => request.Canonical.Format?.Kind is ResponseFormatKind.JsonSchema or ResponseFormatKind.JsonObject;
}
