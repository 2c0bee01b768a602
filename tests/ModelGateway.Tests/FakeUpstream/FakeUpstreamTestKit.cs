using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>Raw HTTP helpers for talking to the fake the way a gateway would.</summary>
internal static class FakeUpstreamTestKit
{
    public static readonly TimeSpan Generous = TimeSpan.FromSeconds(10);

    public static string ChatBody(
        string model = "gpt-4o",
        bool stream = false,
        bool includeUsage = false,
        string prompt = "Say hello",
        Action<JsonObject>? extra = null)
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }),
        };
        if (stream)
        {
            body["stream"] = true;
        }

        if (includeUsage)
        {
            body["stream_options"] = new JsonObject { ["include_usage"] = true };
        }

        extra?.Invoke(body);
        return body.ToJsonString();
    }

    /// <summary>
    /// A fresh client, so no pooled connection is shared with other tests. Disposing an unfinished response
    /// closes its connection at once (no draining), which is how a gateway cancelling upstream behaves.
    /// </summary>
    public static HttpClient NewClient(FakeUpstreamServer server) =>
        new(new SocketsHttpHandler { ResponseDrainTimeout = TimeSpan.Zero, UseCookies = false })
        {
            BaseAddress = server.BaseUri,
            Timeout = Timeout.InfiniteTimeSpan,
        };

    public static HttpRequestMessage Post(string path, string json, string? bearer = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return request;
    }

    public static async Task<HttpResponseMessage> SendAsync(HttpClient client, HttpRequestMessage request, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Generous);
        return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
    }

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    public static List<string> PropertyNames(JsonElement element) =>
        [.. element.EnumerateObject().Select(p => p.Name)];
}

/// <summary>
/// Reads a server-sent-events body strictly: every event must be exactly one <c>data: </c> line followed by a blank line.
/// </summary>
internal sealed class SseReader : IDisposable
{
    private readonly StreamReader _reader;

    private SseReader(Stream stream) => _reader = new StreamReader(stream, Encoding.UTF8);

    public static async Task<SseReader> OpenAsync(HttpResponseMessage response) =>
        new(await response.Content.ReadAsStreamAsync());

    /// <summary>The next event's data, or null at a clean end of the body.</summary>
    public async Task<string?> NextAsync(CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(FakeUpstreamTestKit.Generous);
        var line = await _reader.ReadLineAsync(timeout.Token);
        if (line is null)
        {
            return null;
        }

        Assert.StartsWith("data: ", line, StringComparison.Ordinal);
        var blank = await _reader.ReadLineAsync(timeout.Token);
        Assert.Equal(string.Empty, blank);
        return line["data: ".Length..];
    }

    /// <summary>All remaining events up to the clean end of the body.</summary>
    public async Task<List<string>> ReadAllAsync()
    {
        var events = new List<string>();
        while (await NextAsync() is { } data)
        {
            events.Add(data);
        }

        return events;
    }

    public void Dispose() => _reader.Dispose();
}
