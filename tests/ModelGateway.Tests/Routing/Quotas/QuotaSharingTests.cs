using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Routing.Quotas;

/// <summary>
/// Two replicas sharing one Redis: what the provider told one of them about its quota binds the other
/// within a share interval, without the other ever asking the provider.
/// </summary>
public sealed class QuotaSharingTests : IAsyncLifetime
{
    private FakeUpstreamServer _primary = null!;
    private FakeUpstreamServer _fallback = null!;
    private RedisServer _redis = null!;

    public async Task InitializeAsync()
    {
        _primary = await FakeUpstreamServer.StartAsync();
        _fallback = await FakeUpstreamServer.StartAsync();
        _redis = await RedisServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _primary.DisposeAsync();
        await _fallback.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private Task<GatewayHost> StartAsync() => GatewayHost.StartAsync($$"""
        providers:
          - { name: primary, kind: openai-compatible, baseUrl: "{{_primary.OpenAIBaseUrl}}" }
          - { name: fallback, kind: openai-compatible, baseUrl: "{{_fallback.OpenAIBaseUrl}}" }
        deployments:
          - { name: a, provider: primary, model: a-model }
          - { name: b, provider: fallback, model: b-model }
        routes:
          - { name: chat, strategy: priority, targets: [a, b] }
        """, new Dictionary<string, string?> { ["State:Redis"] = _redis.ConnectionString, ["State:CommandTimeout"] = "00:00:02" });

    private static async Task<string?> DeploymentOfAsync(GatewayHost gateway)
    {
        using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response.Headers.TryGetValues("x-modelgateway-deployment", out var values) ? values.Single() : null;
    }

    private static async Task<JsonElement> ExcludedAsync(GatewayHost gateway, string deployment)
    {
        using var response = await gateway.PostAsync("v1/route/explain", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        var explained = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
        return explained.GetProperty("excluded").EnumerateArray().FirstOrDefault(e => e.GetProperty("deployment").GetString() == deployment);
    }

    [Fact]
    public async Task A_reading_one_replica_took_keeps_the_other_replica_off_the_deployment_until_the_reset()
    {
        await using var first = await StartAsync();
        await using var second = await StartAsync();
        _primary.Enqueue("a-model", new UpstreamBehavior
        {
            Headers = new Dictionary<string, string>
            {
                ["x-ratelimit-limit-requests"] = "60",
                ["x-ratelimit-remaining-requests"] = "0",
                ["x-ratelimit-reset-requests"] = "30s",
            },
        });

        Assert.Equal("a", await DeploymentOfAsync(first));

        // The second replica has never heard from the provider; the shared reading reaches it within a few intervals.
        var clock = Stopwatch.StartNew();
        JsonElement excluded;
        do
        {
            await Task.Delay(100);
            excluded = await ExcludedAsync(second, "a");
        }
        while (excluded.ValueKind == JsonValueKind.Undefined && clock.Elapsed < TimeSpan.FromSeconds(5));

        Assert.Equal("quota", excluded.GetProperty("reason").GetString());
        Assert.Matches(@"^quota: 0 requests left until \d\d:\d\d:\d\d$", excluded.GetProperty("detail").GetString());
        Assert.Equal("b", await DeploymentOfAsync(second));
        Assert.Equal(1, _primary.RequestCount);
    }

    [Fact]
    public async Task A_limit_in_the_providers_own_window_holds_across_replicas()
    {
        var config = $$"""
            providers:
              - { name: primary, kind: openai-compatible, baseUrl: "{{_primary.OpenAIBaseUrl}}" }
              - { name: fallback, kind: openai-compatible, baseUrl: "{{_fallback.OpenAIBaseUrl}}" }
            deployments:
              - { name: a, provider: primary, model: a-model, limits: { requests: "2 per 30s" } }
              - { name: b, provider: fallback, model: b-model }
            routes:
              - { name: chat, strategy: priority, targets: [a, b] }
            """;
        var settings = new Dictionary<string, string?> { ["State:Redis"] = _redis.ConnectionString, ["State:CommandTimeout"] = "00:00:02" };
        await using var first = await GatewayHost.StartAsync(config, settings);
        await using var second = await GatewayHost.StartAsync(config, settings);

        Assert.Equal("a", await DeploymentOfAsync(first));
        Assert.Equal("a", await DeploymentOfAsync(second));

        // Two in the window, taken on two replicas: the third, on either, goes elsewhere.
        Assert.Equal("b", await DeploymentOfAsync(first));
        Assert.Equal("b", await DeploymentOfAsync(second));
        Assert.Equal(2, _primary.RequestCount);
        Assert.Equal("rate_limited", (await ExcludedAsync(second, "a")).GetProperty("reason").GetString());
    }
}
