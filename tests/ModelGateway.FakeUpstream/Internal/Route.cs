namespace ModelGateway.FakeUpstream.Internal;

internal enum UpstreamEndpoint
{
    Unknown,
    ChatCompletions,
    Completions,
    Embeddings,
    Models,
}

/// <summary>Which endpoint a request addresses, and for Azure the deployment from its path.</summary>
internal readonly record struct Route(UpstreamEndpoint Endpoint, bool IsAzure, string? Deployment)
{
    private const string AzurePrefix = "/openai/deployments/";

    public static Route Match(string method, string path)
    {
        var isPost = HttpMethods.IsPost(method);
        switch (path)
        {
            case "/v1/chat/completions" when isPost:
                return new Route(UpstreamEndpoint.ChatCompletions, false, null);
            case "/v1/completions" when isPost:
                return new Route(UpstreamEndpoint.Completions, false, null);
            case "/v1/embeddings" when isPost:
                return new Route(UpstreamEndpoint.Embeddings, false, null);
            case "/v1/models" when HttpMethods.IsGet(method):
                return new Route(UpstreamEndpoint.Models, false, null);
        }

        if (!path.StartsWith(AzurePrefix, StringComparison.Ordinal))
        {
            return default;
        }

        var rest = path.AsSpan(AzurePrefix.Length);
        var slash = rest.IndexOf('/');
        if (slash <= 0)
        {
            return new Route(UpstreamEndpoint.Unknown, true, null);
        }

        var deployment = rest[..slash].ToString();
        var endpoint = rest[(slash + 1)..] switch
        {
            "chat/completions" when isPost => UpstreamEndpoint.ChatCompletions,
            "completions" when isPost => UpstreamEndpoint.Completions,
            "embeddings" when isPost => UpstreamEndpoint.Embeddings,
            _ => UpstreamEndpoint.Unknown,
        };
        return new Route(endpoint, true, deployment);
    }
}
