using System.Text;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;

namespace ModelGateway.Providers.Anthropic;

/// <summary>
/// Anthropic's Messages API. OpenAI clients (and any other wire) are translated: the canonical request
/// is written as a Messages request in the provider's API version, and the stream decoded back into
/// canonical events. Anthropic clients pass through with <c>model</c> spliced.
/// </summary>
internal sealed class AnthropicAdapter : IProviderAdapter
{
    private readonly UpstreamForwarder _forwarder;
    private readonly HttpMessageInvoker _invoker;
    private readonly TimeProvider _timeProvider;
    private readonly GatewayOptions _options;
    private readonly AnthropicSettings _settings;
    private readonly string _prefix;
    private readonly Uri _messages;
    private readonly KeyValuePair<string, string>[] _headers;

    // Pass-through: the credential and extra headers only; the client's anthropic-version and -beta travel as sent.
    private readonly KeyValuePair<string, string>[] _passThroughHeaders;
    private readonly KeyValuePair<string, string> _version;

    public AnthropicAdapter(ProviderEndpoint provider, UpstreamForwarder forwarder, HttpMessageInvoker invoker, TimeProvider timeProvider, GatewayOptions options)
    {
        _forwarder = forwarder;
        _invoker = invoker;
        _timeProvider = timeProvider;
        _options = options;
        _settings = provider.SettingsAs<AnthropicSettings>();

        // SDKs take the host as the base URL; an admin who wrote .../v1 means the same thing.
        var baseUrl = provider.BaseUri!.AbsoluteUri.TrimEnd('/');
        if (baseUrl.EndsWith("/v1", StringComparison.Ordinal))
        {
            baseUrl = baseUrl[..^3];
        }

        _prefix = baseUrl;
        _messages = new Uri(baseUrl + "/v1/messages");
        var key = provider.ApiKey?.Value ?? string.Empty;
        var credential = _settings.UsesBearerAuth ? new KeyValuePair<string, string>("Authorization", "Bearer " + key) : new KeyValuePair<string, string>("x-api-key", key);
        var version = new KeyValuePair<string, string>("anthropic-version", _settings.Version);
        _headers = _settings.Betas.Length > 0
            ? OpenAI.ProviderHeaders.Build(provider, credential, version, new("anthropic-beta", string.Join(',', _settings.Betas)))
            : OpenAI.ProviderHeaders.Build(provider, credential, version);
        _passThroughHeaders = OpenAI.ProviderHeaders.Build(provider, credential);
        _version = version;
    }

    public bool PassesThrough(WireFormat wire) => wire == WireFormat.AnthropicMessages;

    public ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var body = request.PassThrough
            ? UpstreamBody.SpliceModel(request)
            : SplicedBody.Whole(AnthropicRequestMapper.Serialize(AnthropicRequestMapper.Map(request.Canonical, request.Deployment, _settings, request.Stream, out _)));
        return _forwarder.SendAsync(request.Request, _invoker, _prefix, _messages, body, request.PassThrough ? PassThroughHeaders(request) : _headers, signer: null, cancellationToken);
    }

    // An Anthropic client's request is written for the API version it names, with the betas it asked for
    // (Claude Code's context management, effort...): both win over the deployment's defaults, which fill
    // in only what the client left out; the deployment's own betas are added to the client's.
    private KeyValuePair<string, string>[] PassThroughHeaders(UpstreamRequest request)
    {
        var inbound = request.Request.HttpContext.Request.Headers;
        var clientVersion = inbound["anthropic-version"].ToString();
        if (clientVersion.Length > 0 && _settings.Betas.Length == 0)
        {
            return _passThroughHeaders;
        }

        var headers = new List<KeyValuePair<string, string>>(_passThroughHeaders);
        if (clientVersion.Length == 0)
        {
            headers.Add(_version);
        }

        if (_settings.Betas.Length > 0)
        {
            var betas = new List<string>();
            foreach (var value in inbound["anthropic-beta"])
            {
                foreach (var beta in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    if (!betas.Contains(beta))
                    {
                        betas.Add(beta);
                    }
                }
            }

            foreach (var beta in _settings.Betas)
            {
                if (!betas.Contains(beta))
                {
                    betas.Add(beta);
                }
            }

            headers.Add(new("anthropic-beta", string.Join(',', betas)));
        }

        return [.. headers];
    }

    public UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment)
        => AnthropicErrors.Classify(response, body, deployment, _timeProvider);

    /// <summary>Quotas: <c>anthropic-ratelimit-*</c>.</summary>
    public Routing.Quotas.QuotaReading ReadQuota(UpstreamResponse response) => Routing.Quotas.QuotaHeaders.ReadAnthropic(response, _timeProvider);

    public IStreamDecoder OpenStream(Stream body, UpstreamRequest request)
        => new AnthropicStreamDecoder(body, request.Deployment, UsesJsonTool(request), _options.MaxUpstreamEventBytes);

    public ChatResponse ParseResponse(ReadOnlySpan<byte> body, UpstreamRequest request, out UpstreamError? error)
        => ParseMessage(body, request, out error);

    /// <summary>A whole Messages answer as a canonical one; shared with Claude on Vertex AI, which answers in the same wire.</summary>
    internal static ChatResponse ParseMessage(ReadOnlySpan<byte> body, UpstreamRequest request, out UpstreamError? error)
    {
        error = null;
        var message = JsonSerializer.Deserialize(body, AnthropicJsonContext.Default.AnthropicResponse)
            ?? throw new InvalidDataException("The body is not an Anthropic message.");
        if (message.Type == "error" || message.Error is not null)
        {
            error = AnthropicErrors.InBand(body, request.Deployment);
            return new ChatResponse();
        }

        var jsonTool = UsesJsonTool(request);
        var text = new StringBuilder();
        var reasoning = new StringBuilder();
        string? signature = null;
        var calls = new List<ToolCallResult>();
        foreach (var block in message.Content)
        {
            switch (block)
            {
                case AnthropicTextBlock t:
                    text.Append(t.Text);
                    break;
                case AnthropicThinkingBlock thinking:
                    reasoning.Append(thinking.Thinking);
                    signature = thinking.Signature ?? signature;
                    break;
                case AnthropicToolUseBlock tool when jsonTool && tool.Name == AnthropicRequestMapper.JsonToolName:
                    text.Append(tool.Input.GetRawText());
                    break;
                case AnthropicToolUseBlock tool:
                    calls.Add(new ToolCallResult(tool.Id, tool.Name, tool.Input.ValueKind == JsonValueKind.Undefined ? "{}" : tool.Input.GetRawText()));
                    break;
            }
        }

        return new ChatResponse
        {
            Id = message.Id,
            Model = message.Model,
            Text = text.ToString(),
            Reasoning = reasoning.Length > 0 ? reasoning.ToString() : null,
            ReasoningSignature = signature,
            ToolCalls = calls,
            Finish = AnthropicErrors.MapStopReason(message.StopReason, jsonTool),
            Usage = ToUsage(message.Usage),
        };
    }

    /// <summary>Canonical input is Anthropic's input plus its cache reads and writes.</summary>
    public static TokenUsage ToUsage(AnthropicUsage? usage)
    {
        if (usage is null)
        {
            return default;
        }

        var read = usage.CacheReadInputTokens ?? 0;
        var write = usage.CacheCreationInputTokens ?? 0;
        return new TokenUsage
        {
            Input = (usage.InputTokens ?? 0) + read + write,
            CacheRead = read,
            CacheWrite = write,
            Output = usage.OutputTokens ?? 0,
            Reported = true,
        };
    }

    /// <summary>Whether structured output travels as the forced <c>json_response</c> tool call (translated requests asking for JSON).</summary>
    internal static bool UsesJsonTool(UpstreamRequest request)
        => !request.PassThrough && request.Canonical.Format?.Kind is Wire.ResponseFormatKind.JsonSchema or Wire.ResponseFormatKind.JsonObject;
}
