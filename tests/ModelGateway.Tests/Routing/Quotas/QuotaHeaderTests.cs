using System.Globalization;
using System.Net;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Routing.Quotas;

/// <summary>
/// Each provider's quota headers, read through the real host from a real upstream: a deployment whose
/// provider says nothing is left is skipped before it can answer 429, <c>explain</c> says why, and a 429
/// moves the request on without costing the retry budget.
/// </summary>
public sealed class QuotaHeaderTests : IAsyncLifetime
{
    private FakeUpstreamServer _primary = null!;
    private FakeUpstreamServer _fallback = null!;

    public async Task InitializeAsync()
    {
        _primary = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _fallback = await FakeUpstreamServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _primary.DisposeAsync();
        await _fallback.DisposeAsync();
    }

    private Task<GatewayHost> StartAsync(string primaryProvider, IDictionary<string, string?>? settings = null) => GatewayHost.StartAsync($$"""
        providers:
          - {{primaryProvider}}
          - { name: fallback, kind: openai-compatible, baseUrl: "{{_fallback.OpenAIBaseUrl}}" }
        deployments:
          - { name: a, provider: primary, model: a-model }
          - { name: b, provider: fallback, model: b-model }
        routes:
          - { name: chat, strategy: priority, targets: [a, b] }
        """, settings);

    private string OpenAIProvider => $$"""{ name: primary, kind: openai-compatible, baseUrl: "{{_primary.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }""";

    private static async Task<(HttpStatusCode Status, string? Deployment)> SendAsync(GatewayHost gateway, int? maxTokens = null, string model = "chat")
    {
        var max = maxTokens is { } m ? $",\"max_tokens\":{m}" : string.Empty;
        using var response = await gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]{{max}}}""");
        await response.Content.ReadAsStringAsync();
        return (response.StatusCode, response.Headers.TryGetValues("x-modelgateway-deployment", out var values) ? values.Single() : null);
    }

    private static async Task<JsonElement> ExplainAsync(GatewayHost gateway, int? maxTokens = null)
    {
        var max = maxTokens is { } m ? $",\"max_tokens\":{m}" : string.Empty;
        using var response = await gateway.PostAsync("v1/route/explain", $$"""{"model":"chat","messages":[{"role":"user","content":"hi"}]{{max}}}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static JsonElement Excluded(JsonElement explained, string deployment)
        => explained.GetProperty("excluded").EnumerateArray().Single(e => e.GetProperty("deployment").GetString() == deployment);

    [Fact]
    public async Task OpenAI_headers_saying_no_requests_are_left_send_the_next_request_elsewhere_until_the_reset()
    {
        await using var gateway = await StartAsync(OpenAIProvider);
        _primary.Enqueue("a-model", new UpstreamBehavior
        {
            Headers = new Dictionary<string, string>
            {
                ["x-ratelimit-limit-requests"] = "60",
                ["x-ratelimit-remaining-requests"] = "0",
                ["x-ratelimit-reset-requests"] = "1s",
                ["x-ratelimit-limit-tokens"] = "150000",
                ["x-ratelimit-remaining-tokens"] = "149990",
                ["x-ratelimit-reset-tokens"] = "6m0s",
            },
        });

        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));
        var explained = await ExplainAsync(gateway);
        var excluded = Excluded(explained, "a");
        Assert.Equal("quota", excluded.GetProperty("reason").GetString());
        Assert.Matches(@"^quota: 0 requests left until \d\d:\d\d:\d\d$", excluded.GetProperty("detail").GetString());
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        Assert.Equal(1, _primary.RequestCount);

        // The window resets after a second: the deployment is back.
        await Task.Delay(TimeSpan.FromMilliseconds(1300));
        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));
        Assert.Equal(2, _primary.RequestCount);
    }

    [Fact]
    public async Task Tokens_left_that_do_not_cover_the_prompt_and_max_tokens_skip_the_deployment_only_for_requests_that_big()
    {
        await using var gateway = await StartAsync(OpenAIProvider);
        _primary.Enqueue("a-model", new UpstreamBehavior
        {
            Headers = new Dictionary<string, string>
            {
                ["x-ratelimit-remaining-requests"] = "100",
                ["x-ratelimit-reset-requests"] = "30s",
                ["x-ratelimit-remaining-tokens"] = "600",
                ["x-ratelimit-reset-tokens"] = "30s",
            },
        });

        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway, maxTokens: 10));
        var detail = Excluded(await ExplainAsync(gateway, maxTokens: 4000), "a").GetProperty("detail").GetString();
        Assert.StartsWith("quota: ", detail, StringComparison.Ordinal);
        Assert.Contains(" tokens left until ", detail, StringComparison.Ordinal);

        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway, maxTokens: 4000));
        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway, maxTokens: 10));
    }

    [Fact]
    public async Task Azure_sends_the_same_headers_and_they_are_read_the_same_way()
    {
        await using var gateway = await StartAsync($$"""{ name: primary, kind: azure-openai, baseUrl: "{{_primary.AzureEndpoint}}", apiKey: "{{TestConfigs.ProviderKey}}", apiVersion: 2024-10-21 }""");
        _primary.Enqueue("a-model", new UpstreamBehavior
        {
            Headers = new Dictionary<string, string> { ["x-ratelimit-remaining-requests"] = "0", ["x-ratelimit-reset-requests"] = "20s" },
        });

        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));
        Assert.Equal("quota", Excluded(await ExplainAsync(gateway), "a").GetProperty("reason").GetString());
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        Assert.Equal(1, _primary.RequestCount);
    }

    [Fact]
    public async Task Anthropic_headers_with_rfc3339_resets_are_read_and_the_tightest_token_window_binds()
    {
        await using var gateway = await StartAsync($$"""{ name: primary, kind: anthropic, baseUrl: "{{_primary.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }""");
        var reset = DateTimeOffset.UtcNow.AddSeconds(30).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        _primary.Enqueue("a-model", new UpstreamBehavior
        {
            Headers = new Dictionary<string, string>
            {
                ["anthropic-ratelimit-requests-limit"] = "50",
                ["anthropic-ratelimit-requests-remaining"] = "49",
                ["anthropic-ratelimit-requests-reset"] = reset,
                ["anthropic-ratelimit-tokens-limit"] = "100000",
                ["anthropic-ratelimit-tokens-remaining"] = "90000",
                ["anthropic-ratelimit-tokens-reset"] = reset,
                ["anthropic-ratelimit-output-tokens-limit"] = "8000",
                ["anthropic-ratelimit-output-tokens-remaining"] = "50",
                ["anthropic-ratelimit-output-tokens-reset"] = reset,
            },
        });

        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway, maxTokens: 10));

        // 50 output tokens left: a request that may write 1000 goes elsewhere; one that writes 10 still fits.
        var detail = Excluded(await ExplainAsync(gateway, maxTokens: 1000), "a").GetProperty("detail").GetString();
        Assert.Contains(" tokens left until ", detail, StringComparison.Ordinal);
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway, maxTokens: 1000));
        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway, maxTokens: 10));
    }

    [Fact]
    public async Task A_429_with_quota_headers_fails_over_at_once_and_keeps_the_deployment_out_until_its_reset()
    {
        await using var gateway = await StartAsync(OpenAIProvider);
        _primary.Enqueue("a-model", new UpstreamBehavior
        {
            StatusCode = 429,
            Headers = new Dictionary<string, string> { ["x-ratelimit-remaining-requests"] = "0", ["x-ratelimit-reset-requests"] = "20s" },
        });

        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        Assert.Equal(1, _primary.RequestCount);
    }

    [Fact]
    public async Task A_429_without_headers_backs_the_deployment_off_for_its_retry_after_and_costs_no_retry_budget()
    {
        // No budget at all: before, leaving a 429 for a deployment not yet known to be healthy needed one.
        await using var gateway = await StartAsync(OpenAIProvider, new Dictionary<string, string?> { ["Gateway:RetryBudgetRatio"] = "0", ["Gateway:RetryBudgetMinimumPerSecond"] = "0" });
        _primary.Enqueue("a-model", new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after"] = "20" } });

        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        Assert.Equal("cooling_down", Excluded(await ExplainAsync(gateway), "a").GetProperty("reason").GetString());
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        Assert.Equal(1, _primary.RequestCount);

        // A 429 is not a health failure: the circuit stays closed.
        var explained = await ExplainAsync(gateway);
        Assert.Equal("closed", Excluded(explained, "a").GetProperty("circuit").GetString());
    }

    private Task<GatewayHost> StartWithoutLearningAsync() => GatewayHost.StartAsync($$"""
        providers:
          - {{OpenAIProvider}}
          - { name: fallback, kind: openai-compatible, baseUrl: "{{_fallback.OpenAIBaseUrl}}" }
        deployments:
          - { name: a, provider: primary, model: a-model, quotas: { learn: false } }
          - { name: b, provider: fallback, model: b-model }
        routes:
          - { name: chat, strategy: priority, targets: [a, b] }
        """);

    private static Dictionary<string, string> NothingLeft() => new()
    {
        ["x-ratelimit-limit-requests"] = "60",
        ["x-ratelimit-remaining-requests"] = "0",
        ["x-ratelimit-reset-requests"] = "20s",
    };

    [Fact]
    public async Task The_live_page_shows_the_quota_headroom_the_provider_last_reported()
    {
        await using var gateway = await StartAsync(OpenAIProvider);
        _primary.Enqueue("a-model", new UpstreamBehavior { Headers = NothingLeft() });
        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));

        using var response = await gateway.Http.GetAsync("dashboard/api/state");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var deployments = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("deployments");
        var quota = deployments.EnumerateArray().Single(d => d.GetProperty("name").GetString() == "a").GetProperty("quota");
        Assert.Equal(0, quota.GetProperty("requests_left").GetInt64());
        Assert.Equal(60, quota.GetProperty("requests_limit").GetInt64());
        Assert.InRange(quota.GetProperty("reset_seconds").GetDouble(), 15, 20);
        Assert.False(quota.GetProperty("learnt").GetBoolean());
        Assert.Equal(JsonValueKind.Null, deployments.EnumerateArray().Single(d => d.GetProperty("name").GetString() == "b").GetProperty("quota").ValueKind);
    }

    [Fact]
    public async Task With_quota_learning_off_the_headers_are_ignored_and_the_deployment_keeps_serving()
    {
        await using var gateway = await StartWithoutLearningAsync();
        _primary.Enqueue("a-model", new UpstreamBehavior { Headers = NothingLeft() });

        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));
        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));
        Assert.Equal(2, _primary.RequestCount);
    }
}
