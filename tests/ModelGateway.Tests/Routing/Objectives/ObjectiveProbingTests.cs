using System.Diagnostics;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Routing.Objectives;

/// <summary>
/// What the mixed-fleet test taught an objective route, each behaviour on its own: unknown deployments are learnt
/// by probes rather than by client requests, exploration never spends money the objective does not ask for, and a
/// probe of a deployment whose fleet-wide capacity is full is not sent past it.
/// </summary>
public sealed class ObjectiveProbingTests
{
    private static readonly UpstreamBehavior Slow = new() { HeaderDelay = TimeSpan.FromMilliseconds(900) };

    [Fact]
    public async Task A_cheap_but_slow_deployment_never_measured_is_learnt_by_a_probe_before_any_client_request_reaches_it()
    {
        await using var cloud = await FakeUpstreamServer.StartAsync();
        cloud.SetBehaviorForModel("slow", Slow);
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: cloud, kind: openai-compatible, baseUrl: "{{cloud.OpenAIBaseUrl}}" }
            deployments:
              - { name: slow@cloud, provider: cloud, model: slow, pricing: { input: 0.10, output: 0.40 } }
              - { name: fast@cloud, provider: cloud, model: fast, pricing: { input: 2.50, output: 10.00 } }
            routes:
              - { name: chat, objective: { ttft: 400ms, percentile: 90 }, targets: [slow@cloud, fast@cloud] }
            """);

        // No client request yet: the probe alone finds out that the cheapest target misses.
        var probe = await cloud.WaitForRequestAsync(r => r.Model == "slow", TimeSpan.FromSeconds(10));
        Assert.True(IsProbe(probe), probe.BodyText);
        await EventuallyAsync(async () => (await ExplainFirstAsync(gateway)) == "fast@cloud");

        for (var i = 0; i < 5; i++)
        {
            using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
            await response.Content.ReadAsStringAsync();
            Assert.Equal("fast@cloud", Assert.Single(response.Headers.GetValues("x-modelgateway-deployment")));
        }

        Assert.All(cloud.Requests.Where(r => r.Model == "slow"), r => Assert.True(IsProbe(r), r.BodyText));
    }

    [Fact]
    public async Task Exploration_on_an_objective_route_never_sends_a_client_request_to_a_dearer_deployment()
    {
        await using var cloud = await FakeUpstreamServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: cloud, kind: openai-compatible, baseUrl: "{{cloud.OpenAIBaseUrl}}" }
            deployments:
              - { name: cheap@cloud, provider: cloud, model: cheap, pricing: { input: 0.15, output: 0.60 } }
              - { name: pricey@cloud, provider: cloud, model: pricey, pricing: { input: 2.50, output: 10.00 } }
            routes:
              - name: chat
                objective: { ttft: 2s, percentile: 90 }
                exploration: 0.5       # every second decision would explore the deployment measured longest ago
                targets: [cheap@cloud, pricey@cloud]
            """);

        var served = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
            await response.Content.ReadAsStringAsync();
            served.Add(Assert.Single(response.Headers.GetValues("x-modelgateway-deployment")));
        }

        Assert.All(served, s => Assert.Equal("cheap@cloud", s));
        Assert.All(cloud.Requests.Where(r => r.Model == "pricey"), r => Assert.True(IsProbe(r), r.BodyText));
    }

    [Fact]
    public async Task A_probe_of_a_box_whose_fleet_wide_capacity_is_full_is_skipped_rather_than_sent_past_it()
    {
        const int slots = 2;
        await using var box = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { Slots = slots });
        await using var cloud = await FakeUpstreamServer.StartAsync();
        await using var redis = await RedisServer.StartAsync();

        // The box takes 2 s to its first byte: while its two slots are busy nothing has measured it yet, so it is
        // unknown, and a probe would be due every 100 ms.
        box.DefaultBehavior = new UpstreamBehavior { HeaderDelay = TimeSpan.FromSeconds(2) };
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: box, kind: openai-compatible, baseUrl: "{{box.OpenAIBaseUrl}}" }
              - { name: cloud, kind: openai-compatible, baseUrl: "{{cloud.OpenAIBaseUrl}}" }
            deployments:
              - { name: box, provider: box, model: llama, capacity: {{slots}}, pricing: { perHour: 1 } }
              - { name: cloud, provider: cloud, model: gpt, pricing: { input: 2.50, output: 10.00 } }
            routes:
              - { name: chat, objective: { ttft: 5s, percentile: 90, probeInterval: 100ms }, targets: [box, cloud] }
            """, new Dictionary<string, string?> { ["State:Redis"] = redis.ConnectionString, ["Observability:AccessLog"] = "false" });

        // Fill its two slots with client requests at once: for two seconds it stays unknown, its probe due every 100 ms.
        var clients = Enumerable.Range(0, slots).Select(async _ =>
        {
            using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
            await response.Content.ReadAsStringAsync();
            return Assert.Single(response.Headers.GetValues("x-modelgateway-deployment"));
        }).ToList();
        var served = await Task.WhenAll(clients);

        // (A start-up probe may take one slot before the clients arrive; the second client then spills to the cloud.)
        Assert.Contains("box", served);
        Assert.True(box.MaxConcurrent <= slots, $"the box had {box.MaxConcurrent} requests inside at once; its capacity is {slots}");
    }

    // A probe is the provider's one-token request; clients here stream "hi".
    private static bool IsProbe(RecordedRequest request) => request.BodyText.Contains("\"max_tokens\":1", StringComparison.Ordinal) && !request.BodyText.Contains("\"stream\":true", StringComparison.Ordinal);

    private static async Task<string?> ExplainFirstAsync(GatewayHost gateway)
    {
        using var response = await gateway.PostAsync("v1/route/explain", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("candidates")[0].GetProperty("deployment").GetString();
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), "the condition never held");
            await Task.Delay(50);
        }
    }
}
