using System.Collections.Concurrent;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Wire;

namespace ModelGateway.Providers.OpenAI;

/// <summary>
/// OpenAI and every server that speaks its API (vLLM, Ollama, TGI, LM Studio, Groq...): the body
/// passes through with the model id rewritten, and the key goes in <c>Authorization: Bearer</c>.
/// </summary>
internal sealed class OpenAIProviderClient : IProviderClient
{
    private readonly UpstreamForwarder _forwarder;
    private readonly HttpMessageInvoker _invoker;
    private readonly string _prefix;
    private readonly Uri _chat;
    private readonly Uri _completions;
    private readonly Uri _embeddings;
    private readonly KeyValuePair<string, string>[] _headers;

    public OpenAIProviderClient(ProviderEndpoint provider, UpstreamForwarder forwarder, HttpMessageInvoker invoker)
    {
        _forwarder = forwarder;
        _invoker = invoker;
        var baseUrl = provider.BaseUri!.AbsoluteUri.TrimEnd('/');
        _prefix = baseUrl;
        _chat = new Uri(baseUrl + "/chat/completions");
        _completions = new Uri(baseUrl + "/completions");
        _embeddings = new Uri(baseUrl + "/embeddings");
        _headers = ProviderHeaders.Build(provider, provider.ApiKey is { } key ? new("Authorization", "Bearer " + key.Value) : null);
    }

    public ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var destination = request.Request.Operation switch
        {
            Operation.ChatCompletions => _chat,
            Operation.Completions => _completions,
            _ => _embeddings,
        };
        return _forwarder.SendAsync(request.Request, _invoker, _prefix, destination, UpstreamBody.ForOpenAI(request), _headers, cancellationToken);
    }
}

/// <summary>
/// Azure OpenAI: the deployment name is in the URL, the key in <c>api-key</c>, and every call
/// carries <c>api-version</c>. Bodies and responses are OpenAI's.
/// </summary>
internal sealed class AzureOpenAIProviderClient : IProviderClient
{
    private readonly UpstreamForwarder _forwarder;
    private readonly HttpMessageInvoker _invoker;
    private readonly string _prefix;
    private readonly string _apiVersion;
    private readonly KeyValuePair<string, string>[] _headers;
    private readonly ConcurrentDictionary<(string Deployment, Operation Operation), Uri> _uris = new();

    public AzureOpenAIProviderClient(ProviderEndpoint provider, UpstreamForwarder forwarder, HttpMessageInvoker invoker)
    {
        _forwarder = forwarder;
        _invoker = invoker;
        _prefix = provider.BaseUri!.AbsoluteUri.TrimEnd('/');
        _apiVersion = provider.ApiVersion ?? "2024-10-21";
        _headers = ProviderHeaders.Build(provider, provider.ApiKey is { } key ? new("api-key", key.Value) : null);
    }

    public ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var destination = GetUri(request.Deployment.UpstreamModel, request.Request.Operation);
        return _forwarder.SendAsync(request.Request, _invoker, _prefix, destination, UpstreamBody.ForOpenAI(request), _headers, cancellationToken);
    }

    private Uri GetUri(string deployment, Operation operation)
        => _uris.GetOrAdd((deployment, operation), static (key, self) =>
        {
            var path = key.Operation switch
            {
                Operation.ChatCompletions => "chat/completions",
                Operation.Completions => "completions",
                _ => "embeddings",
            };
            return new Uri($"{self._prefix}/openai/deployments/{Uri.EscapeDataString(key.Deployment)}/{path}?api-version={Uri.EscapeDataString(self._apiVersion)}");
        }, this);
}

/// <summary>The credential header plus any extra headers a provider entry declares.</summary>
internal static class ProviderHeaders
{
    public static KeyValuePair<string, string>[] Build(ProviderEndpoint provider, KeyValuePair<string, string>? credential)
    {
        var headers = new List<KeyValuePair<string, string>>(provider.ExtraHeaders.Length + 1);
        if (credential is { } value)
        {
            headers.Add(value);
        }

        foreach (var (name, secret) in provider.ExtraHeaders)
        {
            headers.Add(new(name, secret.Value));
        }

        return [.. headers];
    }
}
