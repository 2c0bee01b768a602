using System.Collections.Concurrent;
using System.Diagnostics;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Deploy;
using ModelGateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ModelGateway.Tests.Routing.Quotas;

/// <summary>
/// The fleet test of issue 21: open-loop streamed load for a minute, with bursts above a deployment's quota,
/// through three gateway replicas sharing one Redis. The upstream enforces a sliding 10 s window and says what
/// is left in OpenAI's headers in one run, Anthropic's in another, and nothing at all in a third; a fourth run
/// repeats the third with quota learning off (<c>quotas: { learn: false }</c>) as the baseline. The four runs go
/// at once, each with its own upstream and Redis, so the test takes about as long as one.
/// </summary>
[Collection(FleetLoadCollection.Name)]
public sealed class QuotaLoadTests(ITestOutputHelper output)
{
    private const int Replicas = 3;
    private const int Quota = 12;
    private const int BurstSize = 12;
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    private sealed record Run(string Name, IReadOnlyList<StreamResult> Results, long Refused, int Admitted)
    {
        public List<StreamResult> Lost => [.. Results.Where(r => r.End != StreamEnd.Done)];

        public override string ToString() => $"{Name}: {Results.Count} requests, {Admitted} admitted by the quota, {Refused} refused with 429, {Lost.Count} lost";
    }

    private static async Task<Run> RunAsync(string name, QuotaHeaderStyle style, bool learn)
    {
        await using var upstream = await FakeUpstreamServer.StartAsync();
        await using var redis = await RedisServer.StartAsync();
        var quotaProvider = style == QuotaHeaderStyle.Anthropic
            ? $$"""{ name: quota, kind: anthropic, baseUrl: "{{upstream.AnthropicBaseUrl}}", apiKey: "sk-quota-test" }"""
            : $$"""{ name: quota, kind: openai-compatible, baseUrl: "{{upstream.OpenAIBaseUrl}}" }""";
        var config = $$"""
            providers:
              - {{quotaProvider}}
              - { name: spare, kind: openai-compatible, baseUrl: "{{upstream.OpenAIBaseUrl}}" }
            deployments:
              - { name: a, provider: quota, model: q-model, quotas: { learn: {{(learn ? "true" : "false")}} } }
              - { name: b, provider: spare, model: f-model }
            routes:
              - { name: chat, strategy: priority, targets: [a, b] }
            """;
        upstream.DefaultBehavior = new UpstreamBehavior { ChunkCount = 4, ChunkDelay = TimeSpan.FromMilliseconds(25) };
        upstream.SetQuota("q-model", new UpstreamQuota { Requests = Quota, Window = Window, Style = style });
        var settings = new Dictionary<string, string?>
        {
            ["State:Redis"] = redis.ConnectionString,
            ["State:CommandTimeout"] = "00:00:02",
            ["Observability:AccessLog"] = "false",
        };

        var gateways = await Task.WhenAll(Enumerable.Range(0, Replicas).Select(_ => GatewayHost.StartAsync(config, settings)));
        try
        {
            var clients = gateways.Select(g => g.NewClient()).ToArray();
            var results = new ConcurrentQueue<StreamResult>();
            var running = new List<Task>();
            var clock = Stopwatch.StartNew();
            var sent = 0;
            var nextBurst = Window / 2;
            while (clock.Elapsed < Duration)
            {
                // Open loop: requests start on schedule whether or not earlier ones have finished; every window a burst
                // as large as the whole quota arrives on top.
                var burst = clock.Elapsed >= nextBurst ? BurstSize : 1;
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
            var refused = upstream.QuotaRefusals("q-model");
            return new Run(name, [.. results], refused, upstream.Requests.Count(r => r.Model == "q-model") - (int)refused);
        }
        finally
        {
            foreach (var gateway in gateways)
            {
                await gateway.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_fleet_of_three_replicas_routes_around_a_sliding_window_quota_with_headers_or_without_and_loses_nothing()
    {
        var runs = await Task.WhenAll(
            RunAsync("OpenAI headers", QuotaHeaderStyle.OpenAI, learn: true),
            RunAsync("Anthropic headers", QuotaHeaderStyle.Anthropic, learn: true),
            RunAsync("no headers", QuotaHeaderStyle.None, learn: true),
            RunAsync("no headers, learning off", QuotaHeaderStyle.None, learn: false));
        foreach (var run in runs)
        {
            output.WriteLine(run.ToString());
        }

        // Windows the quota reset in after the first one filled it.
        var resets = (int)Math.Ceiling(Duration / Window);
        foreach (var run in runs)
        {
            // Nothing lost, and no 429 reached a client: the spare deployment could always serve.
            Assert.True(run.Lost.Count == 0, $"{run}: {string.Join("; ", run.Lost.Take(5).Select(l => l.Status + " " + l.Detail))}");
            Assert.True(run.Admitted >= Quota, $"{run}: the quota was never used");
        }

        foreach (var run in runs[..2])
        {
            // The provider said what was left: at most one 429 per replica per reset window after the first.
            Assert.True(run.Refused <= Replicas * resets, $"{run}: more than {Replicas} 429s per reset window over {resets} windows");
        }

        // Without headers the 429s themselves teach the back-off: at least 80% fewer than with learning off.
        var (learnt, baseline) = (runs[2], runs[3]);
        Assert.True(baseline.Refused > 0, $"{baseline}: the baseline never hit the quota");
        Assert.True(learnt.Refused <= baseline.Refused / 5, $"{learnt} against {baseline}: fewer than 80% fewer 429s");
    }
}
