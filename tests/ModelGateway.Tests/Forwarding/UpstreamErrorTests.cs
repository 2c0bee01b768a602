using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Forwarding;

/// <summary>When the only deployment misbehaves, the client gets a clean OpenAI-shaped error with the right status, and no secret.</summary>
public sealed class UpstreamErrorTests : IAsyncLifetime
{
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _gateway = await GatewayHost.StartAsync(TestConfigs.SingleOpenAI(_upstream, extraRoute: """
                resilience: { maxAttempts: 1, responseTimeout: 1s, firstTokenTimeout: 1s }
            """));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task Html_error_page_becomes_a_502_json_error()
    {
        _upstream.Enqueue(new UpstreamBehavior { StatusCode = 502, Fault = UpstreamFault.HtmlErrorPage });

        var (status, error, _) = await SendAsync();

        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.DoesNotContain("<html", error.GetProperty("message").GetString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Truncated_json_from_the_upstream_becomes_a_502()
    {
        _upstream.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.InvalidJson });

        var (status, error, _) = await SendAsync();

        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Equal("bad_upstream_response", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Upstream_timeout_becomes_a_504()
    {
        _upstream.Enqueue(new UpstreamBehavior { HeaderDelay = TimeSpan.FromSeconds(5) });

        var (status, error, _) = await SendAsync();

        Assert.Equal(HttpStatusCode.GatewayTimeout, status);
        Assert.Equal("timeout", error.GetProperty("type").GetString());
        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal(RequestOutcome.ClientAborted, await seen.Completion.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Unreachable_upstream_becomes_a_502()
    {
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: gone, kind: openai-compatible, baseUrl: "http://127.0.0.1:{{ClosedPort()}}/v1" }
            deployments:
              - { name: nowhere, provider: gone, model: m }
            routes:
              - { name: m, targets: [nowhere], resilience: { maxAttempts: 1 } }
            """);

        using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"m","messages":[{"role":"user","content":"hi"}]}""");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("false", response.Headers.GetValues("x-should-retry").Single());
        Assert.Contains("1 attempt failed", json.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Provider_rejecting_the_gateways_key_is_not_reported_to_the_client_as_their_401()
    {
        _upstream.Enqueue(new UpstreamBehavior
        {
            StatusCode = 401,
            ErrorMessage = $"Incorrect API key provided: {TestConfigs.ProviderKey}. You can find your API key at https://platform.openai.com.",
            ErrorCode = "invalid_api_key",
        });

        var (status, error, raw) = await SendAsync();

        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Equal("upstream_misconfigured", error.GetProperty("code").GetString());
        Assert.DoesNotContain(TestConfigs.ProviderKey, raw, StringComparison.Ordinal);
        Assert.DoesNotContain(TestConfigs.ProviderKey, _gateway.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upstream_error_messages_are_scrubbed_of_anything_key_shaped()
    {
        _upstream.Enqueue(new UpstreamBehavior
        {
            StatusCode = 400,
            ErrorMessage = $"Bad request made with key {TestConfigs.ProviderKey} and sk-proj-abcdef1234567890 in it.",
            ErrorCode = "invalid_request",
        });

        var (status, error, raw) = await SendAsync();

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.DoesNotContain(TestConfigs.ProviderKey, raw, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-proj-abcdef1234567890", raw, StringComparison.Ordinal);
        Assert.Contains("***", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(TestConfigs.ProviderKey, _gateway.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Provider_key_never_appears_in_models_explain_or_headers()
    {
        using var models = await _gateway.Http.GetAsync("v1/models");
        using var explain = await _gateway.PostAsync("v1/route/explain", """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");
        using var chat = await _gateway.PostAsync("v1/chat/completions", """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");

        foreach (var response in new[] { models, explain, chat })
        {
            Assert.DoesNotContain(TestConfigs.ProviderKey, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.DoesNotContain(TestConfigs.ProviderKey, response.Headers.ToString(), StringComparison.Ordinal);
        }
    }

    private async Task<(HttpStatusCode Status, JsonElement Error, string Raw)> SendAsync()
    {
        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");
        var raw = await response.Content.ReadAsStringAsync();
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(raw);
        return (response.StatusCode, json.RootElement.GetProperty("error").Clone(), raw);
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
