using System.Collections.Concurrent;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Providers.OpenAI;

namespace ModelGateway.Providers.AzureOpenAI;

/// <summary>An Azure OpenAI resource's own settings.</summary>
internal sealed record AzureOpenAISettings(string ApiVersion);

/// <summary>
/// Azure OpenAI: the deployment name is in the URL, the key in <c>api-key</c>, and every call
/// carries <c>api-version</c>. Bodies and responses are OpenAI's.
/// </summary>
internal sealed class AzureOpenAIAdapter : OpenAIWireAdapter, IRawForwardingAdapter
{
    private readonly UpstreamForwarder _forwarder;
    private readonly HttpMessageInvoker _invoker;
    private readonly string _prefix;
    private readonly string _apiVersion;
    private readonly Uri _responses;
    private readonly KeyValuePair<string, string>[] _headers;
    private readonly ConcurrentDictionary<(string Deployment, Wire.Operation Operation), Uri> _uris = new();

    public AzureOpenAIAdapter(ProviderEndpoint provider, UpstreamForwarder forwarder, HttpMessageInvoker invoker, TimeProvider timeProvider, GatewayOptions options)
        : base(timeProvider, options)
    {
        _forwarder = forwarder;
        _invoker = invoker;
        _prefix = provider.BaseUri!.AbsoluteUri.TrimEnd('/');
        _apiVersion = provider.SettingsAs<AzureOpenAISettings>().ApiVersion;
        _responses = new Uri(_prefix + "/openai/v1/responses");
        _headers = ProviderHeaders.Build(provider, provider.ApiKey is { } key ? new("api-key", key.Value) : null);
    }

    /// <summary>Azure serves the Responses API too, on its v1 path (the deployment name goes in <c>model</c>).</summary>
    public override bool PassesThrough(WireFormat wire) => wire is WireFormat.OpenAIChat or WireFormat.OpenAIResponses;

    public override ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var operation = request.PassThrough ? request.Request.Operation : Wire.Operation.ChatCompletions;
        var destination = request.PassThrough && request.Request.Protocol.Wire == WireFormat.OpenAIResponses
            ? _responses
            : GetUri(request.Deployment.UpstreamModel, operation);
        return _forwarder.SendAsync(request.Request, _invoker, _prefix, destination, BuildBody(request), _headers, signer: null, cancellationToken);
    }

    /// <summary>Azure's v1 API serves the OpenAI paths under <c>/openai/v1/</c> (stored responses, files, batches).</summary>
    public Task<HttpResponseMessage> ForwardAsync(HttpRequestMessage message, CancellationToken cancellationToken)
    {
        message.RequestUri = new Uri(_prefix + "/openai/v1/" + message.RequestUri!.OriginalString);
        ProviderHeaders.Apply(message, _headers);
        return _invoker.SendAsync(message, cancellationToken);
    }

    private Uri GetUri(string deployment, Wire.Operation operation)
        => _uris.GetOrAdd((deployment, operation), static (key, self) =>
        {
            var path = key.Operation switch
            {
                Wire.Operation.ChatCompletions => "chat/completions",
                Wire.Operation.Completions => "completions",
                _ => "embeddings",
            };
            return new Uri($"{self._prefix}/openai/deployments/{Uri.EscapeDataString(key.Deployment)}/{path}?api-version={Uri.EscapeDataString(self._apiVersion)}");
        }, this);
}
