using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Routing.Affinity;

/// <summary>Two gateway replicas on one Redis: a conversation started on one continues on the same deployment through the other.</summary>
public sealed class SharedAffinityTests : IAsyncLifetime
{
    private readonly FakeUpstreamServer[] _upstreams = new FakeUpstreamServer[3];
    private RedisServer _redis = null!;
    private GatewayHost _first = null!;
    private GatewayHost _second = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        for (var i = 0; i < _upstreams.Length; i++)
        {
            _upstreams[i] = await FakeUpstreamServer.StartAsync();
        }

        var config = $$"""
            providers:
              - { name: pa, kind: openai-compatible, baseUrl: "{{_upstreams[0].OpenAIBaseUrl}}" }
              - { name: pb, kind: openai-compatible, baseUrl: "{{_upstreams[1].OpenAIBaseUrl}}" }
              - { name: pc, kind: openai-compatible, baseUrl: "{{_upstreams[2].OpenAIBaseUrl}}" }
            deployments:
              - { name: a, provider: pa, model: m, pricing: { input: 1.0, output: 4.0, cacheRead: 0.1 } }
              - { name: b, provider: pb, model: m, pricing: { input: 1.0, output: 4.0, cacheRead: 0.1 } }
              - { name: c, provider: pc, model: m, pricing: { input: 1.0, output: 4.0, cacheRead: 0.1 } }
            routes:
              - { name: sticky, strategy: cost, targets: [a, b, c], affinity: { minPrefixTokens: 200 } }
            """;
        var settings = new Dictionary<string, string?> { ["State:Redis"] = _redis.ConnectionString };
        _first = await GatewayHost.StartAsync(config, settings);
        _second = await GatewayHost.StartAsync(config, settings);
    }

    public async Task DisposeAsync()
    {
        await _first.DisposeAsync();
        await _second.DisposeAsync();
        foreach (var upstream in _upstreams)
        {
            await upstream.DisposeAsync();
        }

        await _redis.DisposeAsync();
    }

    private static string Body(List<object> messages) => JsonSerializer.Serialize(new { model = "sticky", messages });

    private static async Task<(string Deployment, string Answer)> SendAsync(GatewayHost gateway, List<object> messages)
    {
        using var response = await gateway.PostAsync("v1/chat/completions", Body(messages));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return (response.Headers.GetValues("x-modelgateway-deployment").Single(), json["choices"]![0]!["message"]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_conversation_started_on_one_replica_continues_on_the_same_deployment_through_the_other()
    {
        var system = "You are the support assistant for shared printers. " + string.Concat(Enumerable.Repeat("Answer precisely, cite the manual. ", 60));
        List<object> messages = [new { role = "system", content = system }, new { role = "user", content = "It jams." }];
        var (servedBy, answer) = await SendAsync(_first, messages);
        messages.Add(new { role = "assistant", content = answer });
        messages.Add(new { role = "user", content = "Still jams." });

        // The first replica publishes what it remembered in the background: wait until the second has heard it.
        JsonNode explained = null!;
        var decision = string.Empty;
        for (var i = 0; i < 100 && !decision.StartsWith("affinity:", StringComparison.Ordinal); i++)
        {
            using var response = await _second.PostAsync("v1/route/explain", Body(messages));
            explained = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            decision = explained["decision"]!.GetValue<string>();
            if (!decision.StartsWith("affinity:", StringComparison.Ordinal))
            {
                await Task.Delay(50);
            }
        }

        Assert.EndsWith("last served by " + servedBy, decision, StringComparison.Ordinal);
        Assert.Equal("hit", explained["affinity"]!["outcome"]!.GetValue<string>());
        Assert.Equal(servedBy, explained["affinity"]!["last_served_by"]!.GetValue<string>());
        Assert.True(explained["affinity"]!["prefix_tokens"]!.GetValue<int>() >= 200);
        for (var turn = 0; turn < 3; turn++)
        {
            // Other traffic on the second replica moves its tie-breaking rotation on.
            using (await _second.PostAsync("v1/chat/completions", """{"model":"sticky","messages":[{"role":"user","content":"hi"}]}""")) { }
            var (deployment, next) = await SendAsync(_second, messages);
            Assert.Equal(servedBy, deployment);
            messages.Add(new { role = "assistant", content = next });
            messages.Add(new { role = "user", content = "Turn " + turn });
        }
    }
}
