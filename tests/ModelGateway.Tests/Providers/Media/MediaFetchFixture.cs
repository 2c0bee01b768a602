using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Providers.Media;

/// <summary>
/// One gateway, one https image server and one connection canary for the media URL tests. Deployments
/// of a simulated provider that needs bytes (<c>takesMediaUrls: false</c>, as Bedrock and Gemini do)
/// differ only in their <c>mediaFetch</c>. Test DNS: <c>*.images.test</c> is 127.0.0.1 (the image server),
/// <c>loop.test</c> is 127.0.0.2 (the canary); every other name goes to the system resolver.
/// </summary>
public sealed class MediaFetchFixture : IAsyncLifetime
{
    internal TlsImageServer Images { get; private set; } = null!;

    internal ConnectionCanary Canary { get; private set; } = null!;

    internal GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Images = await TlsImageServer.StartAsync();
        Canary = ConnectionCanary.Start();
        var hooks = Images.Hooks(host => host switch
        {
            "loop.test" => [IPAddress.Parse("127.0.0.2")],
            _ when host == "images.test" || host.EndsWith(".images.test", StringComparison.Ordinal) => [IPAddress.Loopback],
            _ => null,
        });
        Gateway = await GatewayHost.StartAsync(Config(Images.Port, Canary.Port), configure: builder => builder.Services.AddSingleton(hooks));
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Canary.DisposeAsync();
        await Images.DisposeAsync();
    }

    /// <summary>Posts a chat request and returns the status, the serving deployment and the error object, if any.</summary>
    internal async Task<(HttpStatusCode Status, string? Deployment, JsonElement Error)> ChatAsync(string model, params string[] imageUrls)
    {
        using var response = await Gateway.PostAsync("v1/chat/completions", ImageRequests.Chat(model, imageUrls));
        var text = await response.Content.ReadAsStringAsync();
        using var json = JsonDocument.Parse(text);
        var error = json.RootElement.TryGetProperty("error", out var e) ? e.Clone() : default;
        var deployment = response.Headers.TryGetValues("x-modelgateway-deployment", out var values) ? values.First() : null;
        return (response.StatusCode, deployment, error);
    }

    internal static string Config(int imagePort, int canaryPort) => $$"""
        providers:
          - name: needs-bytes
            kind: simulated
            simulate: { ttft: 0s, tokensPerSecond: 0, outputTokens: 3, takesMediaUrls: false }
          - name: takes-urls
            kind: simulated
            simulate: { ttft: 0s, tokensPerSecond: 0, outputTokens: 3 }
        deployments:
          - { name: no-fetch, provider: needs-bytes, capabilities: [chat, vision] }
          - name: fetch-loopback
            provider: needs-bytes
            capabilities: [chat, vision]
            mediaFetch:
              allowedPorts: [{{imagePort}}, {{canaryPort}}]
              allowedAddresses: [127.0.0.1]      # the image server, explicitly; 127.0.0.2 and ::1 stay refused
              maxBytes: 65536
              maxRedirects: 2
          - name: fetch-listed
            provider: needs-bytes
            capabilities: [chat, vision]
            mediaFetch: { allowedHosts: ["*.images.test"], allowedPorts: [{{imagePort}}], allowedAddresses: [127.0.0.1/32] }
          - name: fetch-slow
            provider: needs-bytes
            capabilities: [chat, vision]
            mediaFetch: { allowedPorts: [{{imagePort}}], allowedAddresses: [127.0.0.1], timeout: 1s }
          - name: fetch-strict
            provider: needs-bytes
            capabilities: [chat, vision]
            mediaFetch: { allowedPorts: [443, {{imagePort}}, {{canaryPort}}] }
          - { name: url-taker, provider: takes-urls, capabilities: [chat, vision] }
          - { name: other-url-taker, provider: takes-urls, capabilities: [chat, vision] }
        routes:
          - { name: inline-only, targets: [no-fetch] }
          - { name: fetching, targets: [fetch-loopback] }
          - { name: listed, targets: [fetch-listed] }
          - { name: slow, targets: [fetch-slow] }
          - { name: strict, targets: [fetch-strict] }
          - { name: prefer-urls, targets: [fetch-loopback, url-taker] }
          - { name: prefer-off, targets: [no-fetch, url-taker] }
          - name: prefer-weighted
            strategy: weighted
            targets: [{ deployment: fetch-loopback, weight: 100 }, { deployment: url-taker, weight: 1 }, { deployment: other-url-taker, weight: 1 }]
        """;
}

/// <summary>Every test class that shares the media fixture, so one gateway serves them all.</summary>
[CollectionDefinition(Name)]
public sealed class MediaFetchCollection : ICollectionFixture<MediaFetchFixture>
{
    public const string Name = "media fetch";
}

internal static class MediaAssertions
{
    public static void Refused(HttpStatusCode status, JsonElement error, string code, string message)
    {
        Assert.True(status == HttpStatusCode.BadRequest, $"expected 400, got {(int)status}: {error}");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Contains(message, error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
