using System.Diagnostics;
using System.Net;
using ModelGateway.FakeUpstream;
using ModelGateway.State;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Resilience;

/// <summary>A failing provider is not hammered: circuits open and probe, retries stay within budget, and slow attempts are hedged.</summary>
public sealed class CircuitBreakerAndHedgingTests : IAsyncLifetime
{
    private FakeUpstreamServer _flaky = null!;
    private FakeUpstreamServer _steady = null!;

    public async Task InitializeAsync()
    {
        _flaky = await FakeUpstreamServer.StartAsync();
        _steady = await FakeUpstreamServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _flaky.DisposeAsync();
        await _steady.DisposeAsync();
    }

    private string Config(string route, string breaker = "{ consecutiveFailures: 3, minimumThroughput: 1000, breakDuration: 1s }") => $$"""
        providers:
          - { name: flaky, kind: openai-compatible, baseUrl: "{{_flaky.OpenAIBaseUrl}}" }
          - { name: steady, kind: openai-compatible, baseUrl: "{{_steady.OpenAIBaseUrl}}" }
        defaults:
          circuitBreaker: {{breaker}}
        deployments:
          - { name: a, provider: flaky, model: a-model }
          - { name: b, provider: steady, model: b-model }
          - { name: c, provider: steady, model: c-model }
        routes:
          - {{route}}
        """;

    private static async Task<(HttpStatusCode Status, string? Deployment)> SendAsync(GatewayHost gateway, bool stream = false)
    {
        using var response = await gateway.PostAsync("v1/chat/completions", $$"""{"model":"chat","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}""");
        await response.Content.ReadAsStringAsync();
        return (response.StatusCode, response.Headers.TryGetValues("x-modelgateway-deployment", out var values) ? values.Single() : null);
    }

    [Fact]
    public async Task After_consecutive_failures_the_circuit_opens_and_the_deployment_is_skipped_then_probed_back()
    {
        await using var gateway = await GatewayHost.StartAsync(Config("{ name: chat, targets: [a, b] }"));
        _flaky.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        }

        // Open: a is not asked at all.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        }

        Assert.Equal(3, _flaky.RequestCount);

        // After the break, one probe finds a healthy again and the circuit closes.
        _flaky.DefaultBehavior = new UpstreamBehavior();
        await Task.Delay(TimeSpan.FromMilliseconds(1200));
        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));
        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));
        Assert.Equal(5, _flaky.RequestCount);
    }

    [Fact]
    public async Task With_every_circuit_open_the_client_gets_503_with_retry_after_and_no_upstream_is_called()
    {
        await using var gateway = await GatewayHost.StartAsync(Config("{ name: chat, targets: [a] }", "{ consecutiveFailures: 2, minimumThroughput: 1000, breakDuration: 30s }"));
        _flaky.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };
        await SendAsync(gateway);
        var calls = _flaky.RequestCount;

        using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.InRange(int.Parse(response.Headers.GetValues("retry-after").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 30);
        Assert.Equal(calls, _flaky.RequestCount);
    }

    [Fact]
    public async Task Retries_stay_within_the_budget_when_every_provider_is_down()
    {
        await using var gateway = await GatewayHost.StartAsync(
            Config("{ name: chat, targets: [a, b, c], resilience: { maxAttempts: 3, backoff: 10ms, maxBackoff: 20ms } }", "{ consecutiveFailures: 0, minimumThroughput: 1000 }"),
            new Dictionary<string, string?> { ["Gateway:RetryBudgetRatio"] = "0.2", ["Gateway:RetryBudgetMinimumPerSecond"] = "0" });
        _flaky.DefaultBehavior = new UpstreamBehavior { StatusCode = 503 };
        _steady.DefaultBehavior = new UpstreamBehavior { StatusCode = 503 };

        for (var i = 0; i < 20; i++)
        {
            var (status, _) = await SendAsync(gateway);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        }

        // Without a budget this would be 60 upstream calls; with 20% it is the 20 first tries plus at most 4 retries.
        Assert.InRange(_flaky.RequestCount + _steady.RequestCount, 20, 24);
    }

    [Fact]
    public async Task A_slow_first_attempt_is_hedged_and_the_loser_is_cancelled()
    {
        await using var gateway = await GatewayHost.StartAsync(Config("{ name: chat, strategy: priority, targets: [a, b], resilience: { hedging: { delay: 200ms, maxAttempts: 2 } } }"));
        _flaky.DefaultBehavior = new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromSeconds(10) };

        var clock = Stopwatch.StartNew();
        var (status, deployment) = await SendAsync(gateway, stream: true);

        Assert.Equal((HttpStatusCode.OK, "b"), (status, deployment));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        var loser = Assert.Single(_flaky.Requests);
        Assert.Equal(RequestOutcome.ClientAborted, await loser.Completion.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task A_fast_first_attempt_is_never_hedged()
    {
        await using var gateway = await GatewayHost.StartAsync(Config("{ name: chat, strategy: priority, targets: [a, b], resilience: { hedging: { delay: 2s, maxAttempts: 2 } } }"));

        Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway, stream: true));
        Assert.Equal(0, _steady.RequestCount);
    }

    [Fact]
    public async Task Failed_attempts_are_not_billed_as_completions()
    {
        await using var gateway = await GatewayHost.StartAsync(Config("{ name: chat, targets: [a, b] }"));
        _flaky.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };

        await SendAsync(gateway);
        await SendAsync(gateway, stream: true);

        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var rows = await gateway.Service<IUsageQuery>().QueryAsync(new UsageFilter(today.AddDays(-1), today.AddDays(1), UsageGrouping.Deployment), CancellationToken.None);
        var row = Assert.Single(rows);
        Assert.Equal("b", row.Group);
        Assert.Equal(2, row.Requests);
        Assert.True(row.OutputTokens > 0);
    }
}
