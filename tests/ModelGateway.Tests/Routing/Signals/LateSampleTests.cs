using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Routing.Signals;

/// <summary>
/// Without metrics, a request still waiting for its first byte counts as a late latency sample: a box that
/// stops answering loses its rank before the slow answer finishes, not after.
/// </summary>
public sealed class LateSampleTests : IAsyncLifetime
{
    private const string Stream = """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""";

    private FakeUpstreamServer _fast = null!;
    private FakeUpstreamServer _steady = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _fast = await FakeUpstreamServer.StartAsync();
        _steady = await FakeUpstreamServer.StartAsync();
        _steady.DefaultBehavior = new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromMilliseconds(150) };
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: fast, kind: openai-compatible, baseUrl: "{{_fast.OpenAIBaseUrl}}" }
              - { name: steady, kind: openai-compatible, baseUrl: "{{_steady.OpenAIBaseUrl}}" }
            deployments:
              - { name: fast, provider: fast, model: m }
              - { name: steady, provider: steady, model: m }
            routes:
              - { name: chat, strategy: latency, exploration: 0, targets: [fast, steady], resilience: { firstTokenTimeout: 20s, keepAliveInterval: 0s } }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _fast.DisposeAsync();
        await _steady.DisposeAsync();
    }

    [Fact]
    public async Task A_deployment_whose_request_waits_longer_than_its_estimate_loses_its_rank_before_the_answer_finishes()
    {
        // Both measured: fast answers at once, steady after 150 ms.
        for (var i = 0; i < 6 && !(await FirstChoiceAsync() == "fast" && await BothMeasuredAsync()); i++)
        {
            using var warm = await _gateway.PostAsync("v1/chat/completions", Stream);
            await warm.Content.ReadAsStringAsync();
        }

        Assert.Equal("fast", await FirstChoiceAsync());

        // Now fast hangs: its next request gets no first byte for many seconds.
        _fast.DefaultBehavior = new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromSeconds(15) };
        _fast.ClearRecorded();
        using var hung = new CancellationTokenSource();
        var waiting = _gateway.Http.PostAsync("v1/chat/completions", GatewayHost.Json(Stream), hung.Token);
        await _fast.WaitForRequestAsync(r => r.Model == "m", TimeSpan.FromSeconds(5));

        string? first = null;
        for (var i = 0; i < 60 && (first = await FirstChoiceAsync()) != "steady"; i++)
        {
            await Task.Delay(50);
        }

        Assert.Equal("steady", first);
        using (var next = await _gateway.PostAsync("v1/chat/completions", Stream))
        {
            Assert.Equal("steady", Assert.Single(next.Headers.GetValues("x-modelgateway-deployment")));
        }

        await hung.CancelAsync();
        await waiting.ContinueWith(static _ => { });
    }

    private async Task<JsonElement> ExplainAsync()
    {
        using var response = await _gateway.PostAsync("v1/route/explain", Stream);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private async Task<string?> FirstChoiceAsync() => (await ExplainAsync()).GetProperty("candidates")[0].GetProperty("deployment").GetString();

    private async Task<bool> BothMeasuredAsync()
        => (await ExplainAsync()).GetProperty("candidates").EnumerateArray().All(c => c.GetProperty("latency").GetProperty("ewma_ttft_ms").ValueKind == JsonValueKind.Number);
}
