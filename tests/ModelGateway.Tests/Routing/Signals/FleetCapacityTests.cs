using System.Net;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Routing.Signals;

/// <summary>With Redis state, <c>capacity</c> holds for the whole fleet: three replicas never send a box more than it can run.</summary>
public sealed class FleetCapacityTests : IAsyncLifetime
{
    private const int Slots = 2;

    private FakeUpstreamServer _box = null!;
    private FakeUpstreamServer _cloud = null!;
    private RedisServer _redis = null!;
    private GatewayHost[] _replicas = [];

    public async Task InitializeAsync()
    {
        _box = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { Slots = Slots });
        _box.DefaultBehavior = new UpstreamBehavior { ChunkCount = 5, ChunkDelay = TimeSpan.FromMilliseconds(60) };
        _cloud = await FakeUpstreamServer.StartAsync();
        _redis = await RedisServer.StartAsync();
        var config = $$"""
            providers:
              - { name: vllm, kind: openai-compatible, baseUrl: "{{_box.OpenAIBaseUrl}}" }
              - { name: saas, kind: openai-compatible, baseUrl: "{{_cloud.OpenAIBaseUrl}}" }
            deployments:
              - { name: box, provider: vllm, model: llama, capacity: {{Slots}} }
              - { name: cloud, provider: saas, model: gpt }
            routes:
              - { name: chat, strategy: priority, targets: [box, cloud] }
            """;
        var settings = new Dictionary<string, string?> { ["State:Redis"] = _redis.ConnectionString, ["Observability:AccessLog"] = "false" };
        _replicas = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => GatewayHost.StartAsync(config, settings)));
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            await replica.DisposeAsync();
        }

        await _redis.DisposeAsync();
        await _box.DisposeAsync();
        await _cloud.DisposeAsync();
    }

    [Fact]
    public async Task Three_replicas_never_put_more_requests_on_a_box_than_its_capacity()
    {
        // Six at once per replica: each alone would admit two to the box, three replicas six.
        var calls = Enumerable.Range(0, 18).Select(async i =>
        {
            using var response = await _replicas[i % 3].PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
            var text = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
            return Assert.Single(response.Headers.GetValues("x-modelgateway-deployment"));
        }).ToList();
        var servedBy = await Task.WhenAll(calls);

        Assert.True(_box.MaxConcurrent <= Slots, $"the box had {_box.MaxConcurrent} requests inside at once; its capacity is {Slots}");
        Assert.Contains("box", servedBy);
        Assert.Contains("cloud", servedBy);
    }
}
