using System.Net;
using System.Text;

namespace ModelGateway.Bench.StreamSoak;

/// <summary>One pooled client for many concurrent streaming chat completions.</summary>
internal static class StreamClient
{
    public static HttpClient Create() => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,

        // One connection per concurrent stream: HTTP/1.1 cannot multiplex, and the point of the soak
        // is that the gateway holds every one of them open at once.
        MaxConnectionsPerServer = int.MaxValue,
        ConnectTimeout = TimeSpan.FromSeconds(30),
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    public static HttpRequestMessage ChatStream(Uri url, string model, string? apiKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new StringContent(
                $$"""{"model":"{{model}}","stream":true,"messages":[{"role":"user","content":"Write a haiku about the sea."}]}""",
                Encoding.UTF8,
                "application/json"),
        };
        if (apiKey is not null)
        {
            request.Headers.Authorization = new("Bearer", apiKey);
        }

        return request;
    }
}
