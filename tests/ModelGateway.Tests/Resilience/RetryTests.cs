using System.Diagnostics;
using System.Net;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Resilience;

/// <summary>
/// Retries on the same deployment before failing over, as their own per-target (or per-route) setting:
/// exponential backoff with jitter, an upstream's Retry-After honoured when it fits under the ceiling and
/// a failover at once when it does not, and the retry budget over all of it.
/// </summary>
public sealed class RetryTests : IAsyncLifetime
{
    private FakeUpstreamServer _primary = null!;
    private FakeUpstreamServer _fallback = null!;

    public async Task InitializeAsync()
    {
        _primary = await FakeUpstreamServer.StartAsync();
        _fallback = await FakeUpstreamServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _primary.DisposeAsync();
        await _fallback.DisposeAsync();
    }

    private string Config(string routes, string resilience = "{ backoff: 50ms, maxBackoff: 200ms, maxRetryAfter: 2s }") => $$"""
        providers:
          - { name: primary, kind: openai-compatible, baseUrl: "{{_primary.OpenAIBaseUrl}}" }
          - { name: fallback, kind: openai-compatible, baseUrl: "{{_fallback.OpenAIBaseUrl}}" }
        defaults:
          resilience: {{resilience}}
        deployments:
          - { name: a, provider: primary, model: a-model }
          - { name: b, provider: fallback, model: b-model }
        routes:
        {{routes}}
        """;

    private static async Task<(HttpStatusCode Status, string? Deployment)> SendAsync(GatewayHost gateway, string model = "chat")
    {
        using var response = await gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]}""");
        await response.Content.ReadAsStringAsync();
        return (response.StatusCode, response.Headers.TryGetValues("x-modelgateway-deployment", out var values) ? values.Single() : null);
    }

    [Fact]
    public async Task A_target_rate_limited_with_a_short_retry_after_is_retried_after_it_and_answers_without_failing_over()
    {
        await using var gateway = await GatewayHost.StartAsync(Config("  - { name: chat, strategy: priority, targets: [{ deployment: a, retries: 2 }, b] }"));
        _primary.Enqueue("a-model", new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after"] = "1" } });

        var clock = Stopwatch.StartNew();
        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));

        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(900), $"retried after {clock.Elapsed}, before the upstream's Retry-After");
        Assert.Equal(2, _primary.RequestCount);
        Assert.Equal(0, _fallback.RequestCount);
    }

    [Fact]
    public async Task A_retry_after_longer_than_the_ceiling_fails_over_at_once()
    {
        await using var gateway = await GatewayHost.StartAsync(Config("  - { name: chat, strategy: priority, targets: [{ deployment: a, retries: 2 }, b] }"));
        _primary.Enqueue("a-model", new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after"] = "30" } });

        var clock = Stopwatch.StartNew();
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.Equal(1, _primary.RequestCount);
    }

    [Fact]
    public async Task A_failing_target_is_retried_up_to_its_retries_with_backoff_then_the_route_fails_over()
    {
        await using var gateway = await GatewayHost.StartAsync(Config("""
              - { name: chat, strategy: priority, targets: [{ deployment: a, retries: 2 }, b] }
              - { name: routed, strategy: priority, targets: [a, b], resilience: { retries: 1 } }
            """));
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };

        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        Assert.Equal(3, _primary.RequestCount);

        // A target without its own setting takes the route's.
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway, "routed"));
        Assert.Equal(5, _primary.RequestCount);

        var lines = await gateway.Logs.WaitForLinesAsync(l => LogLines.Plain(l).Contains("ModelGateway.AccessLog", StringComparison.Ordinal) && LogLines.Plain(l).Contains("route=chat", StringComparison.Ordinal));
        Assert.Contains("attempts=4 ", LogLines.Plain(Assert.Single(lines)), StringComparison.Ordinal);
        Assert.Equal(2, gateway.Logs.Lines.Select(LogLines.Plain).Count(l => l.Contains("Request ", StringComparison.Ordinal) && l.Contains("retrying a (", StringComparison.Ordinal) && l.Contains("of 2)", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_request_error_is_never_retried_on_the_same_deployment()
    {
        await using var gateway = await GatewayHost.StartAsync(Config("  - { name: chat, strategy: priority, targets: [{ deployment: a, retries: 3 }, b] }"));
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 400, ErrorMessage = "Invalid 'messages'." };

        var (status, _) = await SendAsync(gateway);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(1, _primary.RequestCount);
        Assert.Equal(0, _fallback.RequestCount);
    }

    [Fact]
    public async Task Retries_on_the_same_deployment_draw_on_the_retry_budget()
    {
        await using var gateway = await GatewayHost.StartAsync(
            Config("""
              - { name: chat, strategy: priority, targets: [{ deployment: a, retries: 3 }, b] }
              - { name: warm, targets: [b] }
            """),
            new Dictionary<string, string?> { ["Gateway:RetryBudgetRatio"] = "0", ["Gateway:RetryBudgetMinimumPerSecond"] = "0" });
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway, "warm"));
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };

        // No budget at all: no retry on a; the failover to b, which is known to be healthy, needs none.
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        Assert.Equal(1, _primary.RequestCount);
    }
}
