using System.Collections.Concurrent;
using ModelGateway.Configuration;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Deploy;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Resilience;

/// <summary>
/// One deployment's outage under steady load, with the shipped defaults (no circuit, probe, retry or
/// budget setting in the file): while healthy deployments stand ready, no request is lost, the failing
/// deployment leaves rotation after a few calls, and it is back soon after it recovers. The gateway's
/// clock runs ten times faster than real time, so a 30-second outage takes three seconds.
/// </summary>
public sealed class OutageTests : IAsyncLifetime
{
    private const double Speed = 10;
    private static readonly TimeSpan OutageStart = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan OutageEnd = TimeSpan.FromSeconds(40);
    private static readonly TimeSpan LoadEnd = TimeSpan.FromSeconds(55);

    private FakeUpstreamServer _upstream = null!;

    public async Task InitializeAsync() => _upstream = await FakeUpstreamServer.StartAsync();

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    [Fact]
    public async Task A_deployment_failing_every_call_for_30s_under_steady_load_loses_no_request_while_others_are_healthy()
    {
        var clock = new ScaledTimeProvider(Speed);
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: paas, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
              - { name: saas, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
            deployments:
              - { name: mid, provider: paas, model: mid-model, pricing: { input: 0.5, output: 1.5 } }
              - { name: slow, provider: saas, model: slow-model, pricing: { input: 1, output: 3 } }
              - { name: fast, provider: saas, model: fast-model, pricing: { input: 2.5, output: 10 } }
            routes:
              - { name: chat, strategy: cost, targets: [mid, slow, fast] }
            """, timeProvider: clock);

        // Steady load: plain and streamed chats, each client one after another.
        var outcomes = new ConcurrentQueue<(TimeSpan At, bool Ok, string Detail)>();
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
        {
            var http = gateway.NewClient();
            while (!stop.IsCancellationRequested)
            {
                var at = clock.Elapsed;
                if (i % 2 == 0)
                {
                    var result = await ChatCalls.StreamAsync(http, "chat");
                    outcomes.Enqueue((at, result.End == StreamEnd.Done, result.Detail));
                }
                else
                {
                    var (status, body) = await ChatCalls.CompleteAsync(http, "chat");
                    outcomes.Enqueue((at, status == 200, status + " " + body));
                }
            }
        })).ToArray();

        await clock.WaitUntilAsync(OutageStart);
        _upstream.SetBehaviorForModel("mid-model", new UpstreamBehavior { StatusCode = 503 });
        var before = CallsTo("mid-model");
        await clock.WaitUntilAsync(OutageEnd);
        _upstream.ClearBehaviorForModel("mid-model");
        var during = CallsTo("mid-model") - before;
        var afterOutage = _upstream.RequestCount;
        await clock.WaitUntilAsync(LoadEnd);
        await stop.CancelAsync();
        await Task.WhenAll(clients).WaitAsync(TimeSpan.FromSeconds(60));

        var all = outcomes.ToArray();
        var lost = all.Where(o => !o.Ok).ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} of {all.Length} requests lost: {string.Join("; ", lost.Take(5).Select(l => l.Detail))}");
        Assert.True(all.Count(o => o.At > OutageStart && o.At < OutageEnd) >= 30, $"only {all.Length} requests in all: not a steady load");

        // Not hammered: five calls in a row open its circuit; then at most one probe per interval (plus the calls already in flight).
        Assert.InRange(during, 5, 5 + (int)((OutageEnd - OutageStart) / ProbeSettings.Default.Interval) + 10);

        // Back in service after the outage: the cheapest deployment takes traffic again (not only probes).
        Assert.True(_upstream.Requests.Skip(afterOutage).Count(r => r.Model == "mid-model" && r.Json?["max_tokens"] is null) > 10, "the recovered deployment did not serve again");
        Assert.Contains(gateway.Logs.Lines, line => LogLines.Plain(line).Contains("Circuit of deployment mid", StringComparison.Ordinal) && line.Contains("closed", StringComparison.Ordinal));
    }

    private int CallsTo(string model) => _upstream.Requests.Count(r => r.Model == model);
}
