using System.Collections.Concurrent;
using System.Diagnostics;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Deploy;
using ModelGateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ModelGateway.Tests.Routing.Quotas;

/// <summary>
/// Open-loop streamed load, with bursts above a deployment's quota, through three gateway replicas: the
/// upstream enforces a sliding window and says what is left in its own headers (OpenAI's or Anthropic's).
/// The client never sees a 429 while another deployment can serve, no request is lost, and each replica
/// earns at most about one 429 per window reset. The window is short (2 s) so the run stays lean.
/// </summary>
public sealed class QuotaLoadTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Replicas = 3;
    private const int Quota = 6;
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(40);

    private FakeUpstreamServer _upstream = null!;

    public async Task InitializeAsync() => _upstream = await FakeUpstreamServer.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private async Task<(List<StreamResult> Results, long Refused, int Admitted)> RunAsync(QuotaHeaderStyle style)
    {
        var quotaProvider = style == QuotaHeaderStyle.Anthropic
            ? $$"""{ name: quota, kind: anthropic, baseUrl: "{{_upstream.AnthropicBaseUrl}}", apiKey: "sk-quota-test" }"""
            : $$"""{ name: quota, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }""";
        var config = $$"""
            providers:
              - {{quotaProvider}}
              - { name: spare, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
            deployments:
              - { name: a, provider: quota, model: q-model }
              - { name: b, provider: spare, model: f-model }
            routes:
              - { name: chat, strategy: priority, targets: [a, b] }
            """;
        _upstream.DefaultBehavior = new UpstreamBehavior { ChunkCount = 4, ChunkDelay = TimeSpan.FromMilliseconds(25) };
        _upstream.SetQuota("q-model", new UpstreamQuota { Requests = Quota, Window = Window, Style = style });

        var gateways = new GatewayHost[Replicas];
        try
        {
            for (var i = 0; i < Replicas; i++)
            {
                gateways[i] = await GatewayHost.StartAsync(config);
            }

            var clients = gateways.Select(g => g.NewClient()).ToArray();
            var results = new ConcurrentQueue<StreamResult>();
            var running = new List<Task>();
            var clock = Stopwatch.StartNew();
            var sent = 0;
            var nextBurst = Window;
            while (clock.Elapsed < Duration)
            {
                // Open loop: requests start on schedule whether or not earlier ones have finished.
                var burst = clock.Elapsed >= nextBurst ? 12 : 1;
                if (burst > 1)
                {
                    nextBurst += Window;
                }

                for (var b = 0; b < burst; b++)
                {
                    var client = clients[sent++ % Replicas];
                    running.Add(Task.Run(async () => results.Enqueue(await ChatCalls.StreamAsync(client, "chat"))));
                }

                await Task.Delay(Interval);
            }

            await Task.WhenAll(running).WaitAsync(TimeSpan.FromSeconds(60));
            var admitted = _upstream.Requests.Count(r => r.Model == "q-model") - (int)_upstream.QuotaRefusals("q-model");
            return ([.. results], _upstream.QuotaRefusals("q-model"), admitted);
        }
        finally
        {
            foreach (var gateway in gateways)
            {
                if (gateway is not null)
                {
                    await gateway.DisposeAsync();
                }
            }
        }
    }

    [Theory]
    [InlineData(QuotaHeaderStyle.OpenAI)]
    [InlineData(QuotaHeaderStyle.Anthropic)]
    public async Task Bursts_over_a_quota_that_says_what_is_left_reach_no_client_as_429_and_cost_about_one_429_per_replica_per_reset(QuotaHeaderStyle style)
    {
        var (results, refused, admitted) = await RunAsync(style);
        output.WriteLine($"{style}: {results.Count} requests, {admitted} admitted by the quota, {refused} refused with 429");

        var lost = results.Where(r => r.End != StreamEnd.Done).ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} of {results.Count} lost: {string.Join("; ", lost.Take(5).Select(l => l.Status + " " + l.Detail))}");
        Assert.True(admitted >= Quota, $"the quota was never used: {admitted} admitted");

        // Each admission frees one slot a window later (a reset); each replica may learn of it by one 429 at most.
        Assert.True(refused <= Replicas * (admitted + 1), $"{refused} 429s for {admitted} admissions over {Replicas} replicas");
    }

    [Fact]
    public async Task Bursts_over_a_quota_that_sends_no_headers_reach_no_client_as_429_and_each_429_backs_the_deployment_off()
    {
        var (results, refused, admitted) = await RunAsync(QuotaHeaderStyle.None);
        output.WriteLine($"None: {results.Count} requests, {admitted} admitted by the quota, {refused} refused with 429");

        var lost = results.Where(r => r.End != StreamEnd.Done).ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} of {results.Count} lost: {string.Join("; ", lost.Take(5).Select(l => l.Status + " " + l.Detail))}");
        Assert.True(admitted >= Quota, $"the quota was never used: {admitted} admitted");
        Assert.True(refused <= Replicas * (admitted + 1), $"{refused} 429s for {admitted} admissions over {Replicas} replicas");
    }
}
