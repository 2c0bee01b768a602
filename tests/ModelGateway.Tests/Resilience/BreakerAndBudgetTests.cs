using System.Net;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Resilience;

/// <summary>
/// A deployment that fails call after call leaves rotation whatever it did before, and a failover to a
/// deployment known to be healthy never fails the client for lack of retry budget.
/// </summary>
public sealed class BreakerAndBudgetTests : IAsyncLifetime
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

    // Probes are off so that every call the flaky server sees is a client request.
    private string Config(string routes, string breaker = "") => $$"""
        providers:
          - { name: flaky, kind: openai-compatible, baseUrl: "{{_flaky.OpenAIBaseUrl}}", probe: { enabled: false } }
          - { name: steady, kind: openai-compatible, baseUrl: "{{_steady.OpenAIBaseUrl}}" }
        {{breaker}}
        deployments:
          - { name: a, provider: flaky, model: a-model }
          - { name: c, provider: flaky, model: c-model }
          - { name: b, provider: steady, model: b-model }
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
    public async Task A_deployment_that_fails_five_calls_in_a_row_leaves_rotation_whatever_its_earlier_successes()
    {
        // The shipped breaker: a window full of successes does not keep a deployment that now fails every call.
        await using var gateway = await GatewayHost.StartAsync(Config("  - { name: chat, strategy: priority, targets: [a, b] }"));
        for (var i = 0; i < 40; i++)
        {
            Assert.Equal((HttpStatusCode.OK, "a"), await SendAsync(gateway));
        }

        _flaky.DefaultBehavior = new UpstreamBehavior { StatusCode = 503 };
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        }

        Assert.Equal(45, _flaky.RequestCount);
        Assert.Contains(gateway.Logs.Lines, l => LogLines.Plain(l).Contains("Circuit of deployment a opened (consecutive-failures)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Failing_over_to_a_healthy_deployment_never_fails_the_client_for_lack_of_retry_budget()
    {
        await using var gateway = await GatewayHost.StartAsync(
            Config("""
              - { name: chat, strategy: priority, targets: [a, b] }
              - { name: warm, targets: [b] }
            """, "defaults: { circuitBreaker: { consecutiveFailures: 0, minimumThroughput: 1000 } }"),
            new Dictionary<string, string?> { ["Gateway:RetryBudgetRatio"] = "0", ["Gateway:RetryBudgetMinimumPerSecond"] = "0" });
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway, "warm"));
        _flaky.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };

        // No budget at all and a breaker that never opens: every request still fails over and is answered.
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        }

        Assert.Equal(20, _flaky.RequestCount);
    }

    [Fact]
    public async Task With_the_budget_spent_the_failover_skips_to_a_deployment_known_to_be_healthy()
    {
        await using var gateway = await GatewayHost.StartAsync(
            Config("""
              - { name: chat, strategy: priority, targets: [a, c, b] }
              - { name: warm, targets: [b] }
            """),
            new Dictionary<string, string?> { ["Gateway:RetryBudgetRatio"] = "0", ["Gateway:RetryBudgetMinimumPerSecond"] = "0" });
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway, "warm"));
        _flaky.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };

        // c was never seen to answer: trying it would be a retry the budget no longer allows, b is a sure thing.
        Assert.Equal((HttpStatusCode.OK, "b"), await SendAsync(gateway));
        Assert.DoesNotContain(_flaky.Requests, r => r.Model == "c-model");
    }
}
