using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Routing;

/// <summary>Through the real host, traffic goes where each route's strategy says, and moves when conditions change.</summary>
public sealed class RoutingIntegrationTests : IAsyncLifetime
{
    private FakeUpstreamServer _selfHosted = null!;
    private FakeUpstreamServer _cloud = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _selfHosted = await FakeUpstreamServer.StartAsync();
        _cloud = await FakeUpstreamServer.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: vllm, kind: openai-compatible, tier: iaas, baseUrl: "{{_selfHosted.OpenAIBaseUrl}}" }
              - { name: cloud, kind: openai-compatible, tier: saas, baseUrl: "{{_cloud.OpenAIBaseUrl}}" }
            deployments:
              - { name: llama@vllm, provider: vllm, model: llama, contextWindow: 2048, capacity: 2, pricing: { perHour: 2.0 }, latencyWindow: 5s }
              - { name: mini@cloud, provider: cloud, model: mini, contextWindow: 128000, pricing: { input: 0.15, output: 0.60 }, latencyWindow: 5s }
              - { name: big@cloud, provider: cloud, model: big, contextWindow: 128000, pricing: { input: 2.50, output: 10.00 }, latencyWindow: 5s }
            routes:
              - { name: priority, strategy: priority, targets: [big@cloud, mini@cloud] }
              - { name: cheap, strategy: cost, targets: [big@cloud, mini@cloud, llama@vllm] }
              - { name: fast, strategy: latency, targets: [mini@cloud, big@cloud], exploration: 0.2 }
              - name: slo
                slo: { ttft: 300ms, percentile: 90 }
                exploration: 0.25
                targets: [mini@cloud, big@cloud]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _selfHosted.DisposeAsync();
        await _cloud.DisposeAsync();
    }

    private async Task<string> ServedByAsync(string model, bool stream = false, string content = "hi")
        => (await RouteAsync(model, stream, content)).Deployment;

    // The deployment that served, and whether routing picked it to keep its latency data fresh.
    private async Task<(string Deployment, bool Exploring)> RouteAsync(string model, bool stream = false, string content = "hi")
    {
        using var response = await _gateway.PostAsync("v1/chat/completions",
            JsonSerializer.Serialize(new { model, stream, messages = new[] { new { role = "user", content } } }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await response.Content.ReadAsStringAsync();
        return (response.Headers.GetValues("x-modelgateway-deployment").Single(),
            response.Headers.GetValues("x-modelgateway-route-reason").Single().Contains("exploring", StringComparison.Ordinal));
    }

    // The next deployment routing chose on the merits, skipping exploration picks.
    private async Task<string> ChosenAsync(string model)
    {
        while (true)
        {
            var (deployment, exploring) = await RouteAsync(model, stream: true);
            if (!exploring)
            {
                return deployment;
            }
        }
    }

    [Fact]
    public async Task Priority_sends_everything_to_the_first_target()
    {
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("big@cloud", await ServedByAsync("priority"));
        }
    }

    [Fact]
    public async Task Cost_sends_traffic_to_the_self_hosted_model_while_it_has_room()
    {
        Assert.Equal("llama@vllm", await ServedByAsync("cheap"));
        Assert.Equal(1, _selfHosted.RequestCount);
    }

    [Fact]
    public async Task Self_hosted_capacity_spills_over_to_the_cloud_and_comes_back()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _selfHosted.DefaultBehavior = new UpstreamBehavior { ChunkCount = 3, HoldBeforeLastChunk = release.Task };
        var held = new List<HttpResponseMessage>();
        for (var i = 0; i < 2; i++)
        {
            var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"cheap","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
            Assert.Equal("llama@vllm", response.Headers.GetValues("x-modelgateway-deployment").Single());
            held.Add(response);
        }

        // Both slots of the self-hosted deployment are busy: the next request spills to the cheapest cloud deployment.
        Assert.Equal("mini@cloud", await ServedByAsync("cheap"));

        release.SetResult();
        foreach (var response in held)
        {
            await response.Content.ReadAsStringAsync();
            response.Dispose();
        }

        _selfHosted.DefaultBehavior = new UpstreamBehavior();
        Assert.Equal("llama@vllm", await ServedByAsync("cheap"));
    }

    [Fact]
    public async Task A_prompt_too_long_for_the_small_model_goes_to_a_long_context_one()
    {
        var longPrompt = string.Join(' ', Enumerable.Repeat("lorem ipsum dolor sit amet", 800));

        Assert.Equal("llama@vllm", await ServedByAsync("cheap"));
        Assert.Equal("mini@cloud", await ServedByAsync("cheap", content: longPrompt));
    }

    [Fact]
    public async Task Latency_follows_the_faster_deployment_as_measured_from_traffic()
    {
        _cloud.SetBehaviorForModel("mini", new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromMilliseconds(250) });
        _cloud.SetBehaviorForModel("big", new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromMilliseconds(10) });

        // Both are tried while unmeasured (and again now and then, so one slow first request is not held against either);
        // apart from those explorations the faster one takes the traffic.
        var chosen = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            chosen.Add(await ChosenAsync("fast"));
        }

        Assert.All(chosen.Skip(6), deployment => Assert.Equal("big@cloud", deployment));
        Assert.Contains(_cloud.Requests, r => r.Model == "mini");
    }

    [Fact]
    public async Task Slo_route_leaves_the_cheap_deployment_when_it_slows_and_returns_when_it_recovers()
    {
        // Mini is cheap and fast: it serves.
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal("mini@cloud", await ChosenAsync("slo"));
        }

        // Mini slows past the 300ms target: within a few requests its p90 misses, and the route moves to big.
        _cloud.SetBehaviorForModel("mini", new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromMilliseconds(450) });
        await EventuallyAsync(async () => await ChosenAsync("slo") == "big@cloud" && await ChosenAsync("slo") == "big@cloud");

        // Mini recovers: exploration keeps measuring it, the slow samples age out of the 5s window, and traffic returns.
        _cloud.ClearBehaviorForModel("mini");
        await EventuallyAsync(async () =>
        {
            await Task.Delay(100);
            return await ChosenAsync("slo") == "mini@cloud" && await ChosenAsync("slo") == "mini@cloud";
        });
    }

    [Fact]
    public async Task Explain_shows_the_ranking_and_why_each_excluded_deployment_was_left_out()
    {
        var longPrompt = string.Join(' ', Enumerable.Repeat("lorem ipsum dolor sit amet", 800));
        using var response = await _gateway.PostAsync("v1/route/explain", JsonSerializer.Serialize(new { model = "cheap", messages = new[] { new { role = "user", content = longPrompt } } }));
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = json.RootElement;

        Assert.Equal("cost", root.GetProperty("strategy").GetString());
        var candidates = root.GetProperty("candidates").EnumerateArray().Select(c => c.GetProperty("deployment").GetString()!).ToArray();
        Assert.Equal(["mini@cloud", "big@cloud"], candidates);
        Assert.True(root.GetProperty("candidates")[0].GetProperty("estimated_cost_usd").GetDouble() < root.GetProperty("candidates")[1].GetProperty("estimated_cost_usd").GetDouble());
        var excluded = Assert.Single(root.GetProperty("excluded").EnumerateArray());
        Assert.Equal("llama@vllm", excluded.GetProperty("deployment").GetString());
        Assert.Equal("context_length_exceeded", excluded.GetProperty("reason").GetString());
        Assert.Contains("context window is 2048", excluded.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, _selfHosted.RequestCount + _cloud.RequestCount);
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            if (await condition())
            {
                return;
            }
        }

        Assert.Fail("the route did not move within 20 seconds");
    }
}
