using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ModelGateway.FakeUpstream;
using ModelGateway.Routing.Signals;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Routing.Signals;

/// <summary>
/// A self-hosted box that reports its own queue (vLLM's <c>/metrics</c>) is avoided while it queues,
/// before its latency shows it; with Redis one replica scrapes per interval for all of them.
/// </summary>
public sealed class LoadSignalsTests : IAsyncLifetime
{
    private const string Chat = """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""";

    private FakeUpstreamServer _box = null!;
    private FakeUpstreamServer _saas = null!;
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<Task> _occupiers = [];

    public async Task InitializeAsync()
    {
        _box = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { Slots = 1 });
        _saas = await FakeUpstreamServer.StartAsync();
        _box.SetBehaviorForModel("occupier", new UpstreamBehavior { HoldBeforeLastChunk = _release.Task });
    }

    public async Task DisposeAsync()
    {
        _release.TrySetResult();
        await Task.WhenAll(_occupiers).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(static _ => { });
        await _box.DisposeAsync();
        await _saas.DisposeAsync();
    }

    private string Config(string metricsUrl) => $$"""
        providers:
          - { name: vllm, kind: openai-compatible, baseUrl: "{{_box.OpenAIBaseUrl}}" }
          - { name: saas, kind: openai-compatible, baseUrl: "{{_saas.OpenAIBaseUrl}}" }
        deployments:
          - { name: box, provider: vllm, model: llama, metrics: { url: "{{metricsUrl}}", interval: 200ms, maxQueue: 0 } }
          - { name: cloud, provider: saas, model: gpt }
        routes:
          - { name: chat, strategy: priority, targets: [box, cloud] }
        """;

    [Fact]
    public async Task A_box_whose_scrape_shows_a_queue_is_tried_last_and_explain_says_it_queues()
    {
        await using var gateway = await GatewayHost.StartAsync(Config(_box.BaseUri + "metrics"));
        await OccupyBoxAsync(running: 1, waiting: 1);

        var explained = await WaitForExplainAsync(gateway, e => Candidate(e, "box").TryGetProperty("queueing", out _));

        var candidates = explained.GetProperty("candidates");
        Assert.Equal("cloud", candidates[0].GetProperty("deployment").GetString());
        var box = Candidate(explained, "box");
        Assert.Equal(2, box.GetProperty("rank").GetInt32());
        Assert.StartsWith("queueing: 1 waiting, 1 running", box.GetProperty("note").GetString(), StringComparison.Ordinal);
        Assert.Equal("queueing", box.GetProperty("load").GetProperty("status").GetString());
        using (var served = await gateway.PostAsync("v1/chat/completions", Chat))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            Assert.Equal("cloud", Assert.Single(served.Headers.GetValues("x-modelgateway-deployment")));
        }

        using (var state = await gateway.Http.GetAsync("dashboard/api/state"))
        {
            var live = JsonDocument.Parse(await state.Content.ReadAsStringAsync()).RootElement;
            var row = live.GetProperty("deployments").EnumerateArray().Single(d => d.GetProperty("name").GetString() == "box");
            Assert.Equal(1, row.GetProperty("load").GetProperty("waiting").GetDouble());
        }

        // Once the queue drains, the next scrape puts the box first again.
        _release.TrySetResult();
        await WaitForExplainAsync(gateway, e => Candidate(e, "box").GetProperty("load").GetProperty("status").GetString() == "ok");
        using var back = await gateway.PostAsync("v1/chat/completions", Chat);
        Assert.Equal("box", Assert.Single(back.Headers.GetValues("x-modelgateway-deployment")));
    }

    [Fact]
    public async Task A_metrics_endpoint_that_cannot_be_scraped_never_blocks_routing()
    {
        // The saas fake has no slots, so it has no /metrics: every scrape fails.
        await using var gateway = await GatewayHost.StartAsync(Config(_saas.BaseUri + "metrics"));

        var explained = await WaitForExplainAsync(gateway, e => Candidate(e, "box").GetProperty("load").GetProperty("failed_scrapes").GetInt32() >= 2);

        Assert.Equal("stale", Candidate(explained, "box").GetProperty("load").GetProperty("status").GetString());
        using var served = await gateway.PostAsync("v1/chat/completions", Chat);
        Assert.Equal("box", Assert.Single(served.Headers.GetValues("x-modelgateway-deployment")));
    }

    [Fact]
    public async Task Replicas_sharing_redis_take_turns_scraping_and_all_see_the_queue()
    {
        await using var redis = await RedisServer.StartAsync();
        var settings = new Dictionary<string, string?> { ["State:Redis"] = redis.ConnectionString };
        await using var first = await GatewayHost.StartAsync(Config(_box.BaseUri + "metrics"), settings);
        await using var second = await GatewayHost.StartAsync(Config(_box.BaseUri + "metrics"), settings);
        await OccupyBoxAsync(running: 1, waiting: 1);

        await WaitForExplainAsync(first, e => Candidate(e, "box").TryGetProperty("queueing", out _));
        await WaitForExplainAsync(second, e => Candidate(e, "box").TryGetProperty("queueing", out _));

        // Over a window of about ten intervals, two replicas scraping on their own would hit the box twenty times.
        var before = _box.MetricsScrapes;
        var window = System.Diagnostics.Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(2));
        var scrapes = _box.MetricsScrapes - before;
        var intervals = window.Elapsed.TotalMilliseconds / 200;
        Assert.True(scrapes <= intervals + 2, $"{scrapes} scrapes in {intervals:0.#} intervals: the replicas did not share the lease");
        Assert.True(Scraper(first).Scrapes + Scraper(second).Scrapes > 0);

        // Still queueing on the replica that did not necessarily scrape: the shared reading kept it fresh.
        await WaitForExplainAsync(second, e => Candidate(e, "box").TryGetProperty("queueing", out _));
        using var served = await second.PostAsync("v1/chat/completions", Chat);
        Assert.Equal("cloud", Assert.Single(served.Headers.GetValues("x-modelgateway-deployment")));
    }

    private static LoadScraper Scraper(GatewayHost gateway) => gateway.Services.GetServices<IHostedService>().OfType<LoadScraper>().Single();

    // Direct calls to the box (not through the gateway) hold its slots, the way other tenants' traffic would.
    private async Task OccupyBoxAsync(int running, int waiting)
    {
        var client = new HttpClient { BaseAddress = _box.BaseUri, Timeout = TimeSpan.FromSeconds(30) };
        for (var i = 0; i < running + waiting; i++)
        {
            _occupiers.Add(Task.Run(async () =>
            {
                using var response = await client.PostAsync("v1/chat/completions", GatewayHost.Json("""{"model":"occupier","stream":true,"messages":[{"role":"user","content":"hold"}]}"""));
                await response.Content.ReadAsStringAsync();
            }));
        }

        for (var i = 0; i < 250 && (_box.SlotsRunning < running || _box.SlotsWaiting < waiting); i++)
        {
            await Task.Delay(20);
        }

        Assert.Equal(running, _box.SlotsRunning);
        Assert.Equal(waiting, _box.SlotsWaiting);
    }

    private static JsonElement Candidate(JsonElement explained, string name)
        => explained.GetProperty("candidates").EnumerateArray().Single(c => c.GetProperty("deployment").GetString() == name);

    private static async Task<JsonElement> WaitForExplainAsync(GatewayHost gateway, Func<JsonElement, bool> done)
    {
        JsonElement last = default;
        for (var i = 0; i < 100; i++)
        {
            using var response = await gateway.PostAsync("v1/route/explain", Chat);
            last = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
            if (done(last))
            {
                return last;
            }

            await Task.Delay(50);
        }

        Assert.Fail("explain never showed the expected load: " + last);
        return last;
    }
}
