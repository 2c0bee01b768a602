using System.Diagnostics;
using System.Net;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Resilience;

/// <summary>
/// Time to first token as a failover trigger: past a route's first-token deadline the attempt is
/// abandoned and the next deployment tried, while reasoning models keep a deadline long enough to think.
/// </summary>
public sealed class FirstTokenDeadlineTests : IAsyncLifetime
{
    private FakeUpstreamServer _slow = null!;
    private FakeUpstreamServer _quick = null!;

    public async Task InitializeAsync()
    {
        _slow = await FakeUpstreamServer.StartAsync();
        _quick = await FakeUpstreamServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _slow.DisposeAsync();
        await _quick.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, string? Deployment, TimeSpan Took)> StreamAsync(GatewayHost gateway, string model)
    {
        var clock = Stopwatch.StartNew();
        using var response = await gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{model}}","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var body = await response.Content.ReadAsStringAsync();
        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        return (response.StatusCode, response.Headers.TryGetValues("x-modelgateway-deployment", out var values) ? values.Single() : null, clock.Elapsed);
    }

    [Fact]
    public async Task Past_the_first_token_deadline_the_attempt_is_abandoned_and_the_next_deployment_answers()
    {
        // The interactive example of docs/resilience.md, scaled down: a 1s deadline instead of 10s.
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: slow, kind: openai-compatible, baseUrl: "{{_slow.OpenAIBaseUrl}}" }
              - { name: quick, kind: openai-compatible, baseUrl: "{{_quick.OpenAIBaseUrl}}" }
            deployments:
              - { name: a, provider: slow, model: a-model }
              - { name: b, provider: quick, model: b-model }
            routes:
              - { name: chat, strategy: priority, targets: [{ deployment: a, retries: 2 }, b], resilience: { firstTokenTimeout: 1s } }
            """);
        _slow.DefaultBehavior = new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromSeconds(20) };

        var (status, deployment, took) = await StreamAsync(gateway, "chat");

        Assert.Equal((HttpStatusCode.OK, "b"), (status, deployment));
        Assert.True(took < TimeSpan.FromSeconds(10), $"took {took}");

        // Abandoned, not waited for again: a deadline already spent its time, so the target's retries do not apply.
        var abandoned = Assert.Single(_slow.Requests);
        Assert.Equal(RequestOutcome.ClientAborted, await abandoned.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_reasoning_model_keeps_its_long_first_token_deadline_unless_its_route_sets_one()
    {
        // o3 is a reasoning model in the model catalog; the file's default deadline is meant for ordinary models.
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: slow, kind: openai-compatible, baseUrl: "{{_slow.OpenAIBaseUrl}}" }
              - { name: quick, kind: openai-compatible, baseUrl: "{{_quick.OpenAIBaseUrl}}" }
            defaults:
              resilience: { firstTokenTimeout: 500ms }
            deployments:
              - { name: thinker, provider: slow, model: o3 }
              - { name: b, provider: quick, model: b-model }
            routes:
              - { name: think, strategy: priority, targets: [thinker, b] }
              - { name: snappy, strategy: priority, targets: [thinker, b], resilience: { firstTokenTimeout: 500ms } }
            """);
        _slow.DefaultBehavior = new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromSeconds(2) };

        var thought = await StreamAsync(gateway, "think");
        Assert.Equal((HttpStatusCode.OK, "thinker"), (thought.Status, thought.Deployment));
        Assert.True(thought.Took >= TimeSpan.FromSeconds(2), $"took {thought.Took}");

        var snapped = await StreamAsync(gateway, "snappy");
        Assert.Equal((HttpStatusCode.OK, "b"), (snapped.Status, snapped.Deployment));
    }
}
