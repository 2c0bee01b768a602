using System.Diagnostics;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Deploy;

/// <summary>
/// The routing file and provider keys mounted as Kubernetes mounts ConfigMaps and Secrets (files that
/// are symlinks through <c>..data</c>, updated by swapping that link) reach a running gateway through
/// its file poller, without a restart.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ConfigMapVolumeTests
{
    private static string Routing(FakeUpstreamServer upstream, string keyFile, string route) => $$"""
        providers:
          - { name: p, kind: openai-compatible, baseUrl: "{{upstream.OpenAIBaseUrl}}", apiKey: "file:{{keyFile}}" }
        deployments:
          - { name: d, provider: p, model: m }
        routes:
          - { name: {{route}}, targets: [d] }
        """;

    [Fact]
    public async Task A_ConfigMap_update_of_the_routing_file_and_a_Secret_rotation_of_a_provider_key_are_both_picked_up_by_the_poller()
    {
        await using var upstream = await FakeUpstreamServer.StartAsync();
        using var secret = ConfigMapVolume.Create("openai", "sk-first-rotation");
        using var routing = ConfigMapVolume.Create("routing.yaml", Routing(upstream, secret.PathOf("openai"), "before"));
        await using var gateway = await GatewayHost.StartAsync(null, new Dictionary<string, string?> { ["Gateway:ConfigPath"] = routing.PathOf("routing.yaml") });
        Assert.Equal(200, (await ChatCalls.CompleteAsync(gateway.Http, "before")).Status);
        Assert.Equal("Bearer sk-first-rotation", upstream.Requests[^1].Headers["Authorization"]);

        routing.Publish(Routing(upstream, secret.PathOf("openai"), "after"));
        await EventuallyAsync(async () => (await ChatCalls.CompleteAsync(gateway.Http, "after")).Status == 200, "the ConfigMap update never reached the gateway");
        Assert.Equal(404, (await ChatCalls.CompleteAsync(gateway.Http, "before")).Status);

        secret.Publish("sk-second-rotation");
        await EventuallyAsync(async () =>
        {
            Assert.Equal(200, (await ChatCalls.CompleteAsync(gateway.Http, "after")).Status);
            return upstream.Requests[^1].Headers["Authorization"] == "Bearer sk-second-rotation";
        }, "the rotated Secret never reached the gateway");
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string failure)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), failure);
            await Task.Delay(50);
        }
    }
}
