using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Deploy;

/// <summary>
/// SIGTERM on a real gateway process, in the documented order: readiness false at once, still
/// accepting for <c>Shutdown:Delay</c>, then new connections refused while requests in flight get up to
/// <c>Shutdown:Grace</c>; what is still open then ends with an error (a stream with the in-band error
/// event); usage held for Redis is written; the process exits 0.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Collection(DeploymentCollection.Name)]
public sealed class GracefulDrainTests
{
    private static string Routing(FakeUpstreamServer upstream) => $$"""
        providers:
          - { name: p, kind: openai-compatible, baseUrl: "{{upstream.OpenAIBaseUrl}}" }
        deployments:
          - { name: d, provider: p, model: m }
          - { name: d-slow, provider: p, model: slow-m }
        routes:
          - { name: chat, targets: [d] }
          - { name: slow, targets: [d-slow] }
        """;

    [Fact]
    public async Task On_SIGTERM_readiness_turns_false_at_once_new_connections_are_served_until_the_delay_ends_then_refused_while_a_stream_in_flight_completes_and_the_process_exits_0()
    {
        var delay = TimeSpan.FromSeconds(3);
        await using var upstream = await FakeUpstreamServer.StartAsync();
        upstream.DefaultBehavior = new UpstreamBehavior { ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(750) };
        using var mount = MountedFolder.Create(new Dictionary<string, string> { ["routing.yaml"] = Routing(upstream) });
        await using var replica = await GatewayReplica.StartAsync("drain-order", new Dictionary<string, string>
        {
            ["MODELGATEWAY_CONFIG"] = mount.PathOf("routing.yaml"),
            ["Auth__Mode"] = "none",
            ["Shutdown__Delay"] = "00:00:03",
            ["Shutdown__Grace"] = "00:00:20",
        });

        var clock = new Stopwatch();
        var signalled = new TaskCompletionSource();
        var stream = ChatCalls.StreamAsync(replica.Http, "chat", afterFirstEvent: async () =>
        {
            clock.Start();
            await replica.SignalTerminateAsync();
            signalled.SetResult();
        });
        await signalled.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // Readiness: false at once.
        using var probe = replica.NewClient();
        while (true)
        {
            using var ready = await probe.GetAsync("healthz/ready");
            if (ready.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                Assert.Contains("shutting down", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
                break;
            }

            Assert.True(clock.Elapsed < delay, "readiness was still true when the delay ended");
            await Task.Delay(25);
        }

        // Still accepting during the delay: a new connection is served, and told to close.
        using (var late = replica.NewClient())
        {
            using var request = ChatCalls.Chat("chat", stream: false);
            using var response = await late.SendAsync(request);
            Assert.True(clock.Elapsed < delay, $"the check of the delay phase ran late ({clock.Elapsed}) on a busy machine");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True(response.Headers.ConnectionClose, "a draining replica's answers close their connection");
        }

        // After the delay: new connections are refused.
        TimeSpan refusedAt;
        while (true)
        {
            using var fresh = replica.NewClient();
            try
            {
                using var response = await fresh.GetAsync("healthz/live");
            }
            catch (HttpRequestException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused })
            {
                refusedAt = clock.Elapsed;
                break;
            }

            Assert.True(clock.Elapsed < delay + TimeSpan.FromSeconds(10), "the listener never closed");
            await Task.Delay(50);
        }

        Assert.True(refusedAt >= delay - TimeSpan.FromMilliseconds(100), $"new connections were refused after {refusedAt}, before the {delay} delay");

        // The stream that was in flight finishes normally, after the listener closed.
        var result = await stream.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(result.End == StreamEnd.Done, $"the stream in flight ended {result.End}: {result.Detail}");
        Assert.Equal(0, await replica.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        var log = replica.OutputText;
        var draining = log.IndexOf("readiness is now false", StringComparison.Ordinal);
        var closing = log.IndexOf("refusing new connections", StringComparison.Ordinal);
        var drained = log.IndexOf("drained after", StringComparison.Ordinal);
        Assert.True(draining >= 0 && closing > draining && drained > closing, "the shutdown steps were not logged in order:\n" + log);
        Assert.Contains("0 requests were ended by the grace", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requests_still_running_when_the_grace_runs_out_end_with_the_shutdown_error_a_stream_in_band_never_a_silent_cut()
    {
        await using var upstream = await FakeUpstreamServer.StartAsync();
        upstream.DefaultBehavior = new UpstreamBehavior { ChunkCount = 60, ChunkDelay = TimeSpan.FromMilliseconds(500) };
        upstream.SetBehaviorForModel("slow-m", new UpstreamBehavior { HeaderDelay = TimeSpan.FromSeconds(60) });
        using var mount = MountedFolder.Create(new Dictionary<string, string> { ["routing.yaml"] = Routing(upstream) });
        await using var replica = await GatewayReplica.StartAsync("grace-over", new Dictionary<string, string>
        {
            ["MODELGATEWAY_CONFIG"] = mount.PathOf("routing.yaml"),
            ["Auth__Mode"] = "none",
            ["Shutdown__Delay"] = "00:00:00",
            ["Shutdown__Grace"] = "00:00:01",
        });

        var firstEvent = new TaskCompletionSource();
        var stream = ChatCalls.StreamAsync(replica.Http, "chat", afterFirstEvent: () =>
        {
            firstEvent.SetResult();
            return Task.CompletedTask;
        });
        using var plainClient = replica.NewClient();
        var plain = ChatCalls.CompleteAsync(plainClient, "slow");
        await firstEvent.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await upstream.WaitForRequestAsync(r => r.Model == "slow-m", TimeSpan.FromSeconds(30));

        var clock = Stopwatch.StartNew();
        await replica.SignalTerminateAsync();

        var streamed = await stream.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(streamed.End == StreamEnd.ErrorEvent, $"the stream ended {streamed.End}: {streamed.Detail}");
        Assert.Equal("server_shutting_down", streamed.ErrorCode);
        Assert.True(streamed.Events >= 1);

        var (status, body) = await plain.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(503, status);
        Assert.Equal("server_shutting_down", ChatCalls.ErrorCode(body));

        Assert.Equal(0, await replica.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"shutting down took {clock.Elapsed} with a 1 s grace");
        Assert.Contains("2 requests were ended by the grace", replica.OutputText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_a_replica_still_holds_for_Redis_is_written_before_it_exits_on_SIGTERM()
    {
        const string masterKey = "mk-drain-usage";
        await using var upstream = await FakeUpstreamServer.StartAsync();
        await using var redis = await RedisServer.StartAsync();
        using var mount = MountedFolder.Create(new Dictionary<string, string> { ["routing.yaml"] = Routing(upstream) });
        var environment = new Dictionary<string, string>
        {
            ["MODELGATEWAY_CONFIG"] = mount.PathOf("routing.yaml"),
            ["MODELGATEWAY_MASTER_KEY"] = masterKey,
            ["Auth__Mode"] = "keys",
            ["State__Redis"] = redis.ConnectionString,
            ["State__CommandTimeout"] = "00:00:02",

            // Nothing is written on a timer during the test: only the shutdown can write these totals.
            ["State__UsageFlushInterval"] = "00:01:00",
            ["Shutdown__Delay"] = "00:00:00",
        };
        await using var first = await GatewayReplica.StartAsync("writes-at-exit", environment);
        var (key, id) = await CreateKeyAsync(first.Http, masterKey);
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(200, (await ChatCalls.CompleteAsync(first.Http, "chat", key)).Status);
        }

        Assert.Equal(StreamEnd.Done, (await ChatCalls.StreamAsync(first.Http, "chat", key)).End);
        Assert.Equal(0, await first.StopAsync(TimeSpan.FromSeconds(30)));

        // Another replica on the same Redis reads the totals the first one wrote on its way out.
        await using var second = await GatewayReplica.StartAsync("reads-after", environment);
        using var report = new HttpRequestMessage(HttpMethod.Get, $"admin/usage?key={id}");
        report.Headers.Authorization = new AuthenticationHeaderValue("Bearer", masterKey);
        using var response = await second.Http.SendAsync(report);
        var rows = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
        Assert.Equal(6, rows.EnumerateArray().Sum(row => row.GetProperty("requests").GetInt64()));
        Assert.True(rows.EnumerateArray().Sum(row => row.GetProperty("output_tokens").GetInt64()) > 0);
    }

    internal static async Task<(string Key, string Id)> CreateKeyAsync(HttpClient http, string masterKey, string json = """{"name":"drain"}""")
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", masterKey);
        using var created = await http.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var root = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement;
        return (root.GetProperty("key").GetString()!, root.GetProperty("id").GetString()!);
    }
}
