using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ModelGateway.Tests.Deploy;

/// <summary>
/// A fleet on one machine: three gateway processes (the published output, configured as the
/// Kubernetes <c>ha</c> overlay configures pods) on one redis-server, behind Debian's nginx, with the
/// routing file mounted the way a ConfigMap volume mounts it. Each test leaves the fleet whole.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Collection(DeploymentCollection.Name)]
public sealed class FleetTests(FleetFixture fleet, ITestOutputHelper output) : IClassFixture<FleetFixture>
{
    [Fact]
    public async Task A_rolling_restart_of_every_replica_under_steady_mixed_load_loses_no_request_and_cuts_no_stream()
    {
        var (key, _) = await fleet.CreateKeyAsync("""{"name":"rolling"}""");
        var clock = Stopwatch.StartNew();
        await using var load = SteadyLoad.Start(fleet.Balancer.Http, "chat", key, plainClients: 3, streamClients: 2, clock);
        await Task.Delay(TimeSpan.FromSeconds(1));

        // As a Deployment rolls with maxSurge 1: each step starts a new pod and stops an old one at once;
        // the old one leaves the rotation by its readiness, the new one joins by its readiness.
        for (var i = 0; i < fleet.Replicas.Length; i++)
        {
            var old = fleet.Replicas[i];
            var next = await GatewayReplica.CreateAsync($"{old.Name}-next", fleet.Environment);
            fleet.Balancer.Watch(next);
            var exitCode = old.StopAsync(TimeSpan.FromSeconds(30));
            await next.StartProcessAsync();
            Assert.True(await exitCode == 0, $"replica {old.Name} exited with {await exitCode}:\n{old.OutputText}");
            fleet.Balancer.Forget(old);
            fleet.Replicas[i] = next;
            await old.DisposeAsync();
            await fleet.Balancer.WaitForRotationAsync(fleet.Replicas.Select(r => r.Port), TimeSpan.FromSeconds(10));
        }

        await Task.Delay(TimeSpan.FromMilliseconds(500));
        var outcomes = await load.StopAsync();

        var plain = outcomes.Where(o => !o.Streamed).ToList();
        var streams = outcomes.Where(o => o.Streamed).ToList();
        var errorEvents = streams.Count(o => o.End == StreamEnd.ErrorEvent);
        var lost = outcomes.Where(o => !o.Ok && o.End != StreamEnd.ErrorEvent).ToList();
        output.WriteLine($"rolling restart in {clock.Elapsed.TotalSeconds:0.0} s: {plain.Count(o => o.Ok)}/{plain.Count} plain 200, "
            + $"{streams.Count(o => o.End == StreamEnd.Done)}/{streams.Count} streams [DONE], {errorEvents} error events, {lost.Count} lost; nginx reloads {fleet.Balancer.Reloads}");
        Assert.True(lost.Count == 0, "lost: " + string.Join("; ", lost.Take(5).Select(o => $"{(o.Streamed ? "stream" : "plain")} {o.Status} at {o.StartedAt.TotalSeconds:0.00}s: {o.Detail}")));
        Assert.True(errorEvents == 0, "streams ended with the error event: " + string.Join("; ", streams.Where(o => o.End == StreamEnd.ErrorEvent).Select(o => o.Detail)));
        Assert.True(plain.Count >= 20 && streams.Count >= 6, $"too little load ran: {plain.Count} plain, {streams.Count} streams");
    }

    [Fact]
    public async Task An_edit_of_the_mounted_routing_file_reaches_every_replica_within_the_poll_interval()
    {
        var (key, _) = await fleet.CreateKeyAsync("""{"name":"routing-edit"}""");
        var route = "chat-" + Guid.NewGuid().ToString("N")[..8];
        foreach (var replica in fleet.Replicas)
        {
            Assert.Equal(404, (await ChatCalls.CompleteAsync(replica.Http, route, key)).Status);
        }

        var clock = Stopwatch.StartNew();
        fleet.Routing.Publish(FleetFixture.RoutingYaml(fleet.Upstream, extraRoute: route));
        var seen = await Task.WhenAll(fleet.Replicas.Select(async replica =>
        {
            while ((await ChatCalls.CompleteAsync(replica.Http, route, key)).Status != 200)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"replica {replica.Name} never served the new route");
                await Task.Delay(25);
            }

            return clock.Elapsed;
        }));

        output.WriteLine($"new route served by each replica after {string.Join(", ", seen.Select(s => $"{s.TotalMilliseconds:0} ms"))} (poll interval {FleetFixture.PollInterval.TotalMilliseconds:0} ms)");

        // One poll interval, plus room for a loaded machine to run the poll and the reload.
        Assert.All(seen, elapsed => Assert.True(elapsed < FleetFixture.PollInterval + TimeSpan.FromSeconds(1.5), $"took {elapsed}"));
        Assert.Equal(200, (await ChatCalls.CompleteAsync(fleet.Balancer.Http, route, key)).Status);
    }

    [Fact]
    public async Task A_replica_killed_hard_loses_only_its_requests_in_flight_and_the_survivors_keep_limits_and_usage_exact()
    {
        var (key, _) = await fleet.CreateKeyAsync("""{"name":"kill"}""");
        var clock = Stopwatch.StartNew();
        var victim = fleet.Replicas[0];
        TimeSpan killedAt, deadAt;
        IReadOnlyList<LoadOutcome> outcomes;
        await using (var load = SteadyLoad.Start(fleet.Balancer.Http, "chat", key, plainClients: 3, streamClients: 2, clock))
        {
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            killedAt = clock.Elapsed;
            await victim.KillHardAsync();
            deadAt = clock.Elapsed;
            await Task.Delay(TimeSpan.FromSeconds(2));
            outcomes = await load.StopAsync();
        }

        var failed = outcomes.Where(o => !o.Ok).ToList();
        output.WriteLine($"SIGKILL at {killedAt.TotalSeconds:0.00} s, process gone at {deadAt.TotalSeconds:0.00} s: {outcomes.Count(o => o.Ok)} ok, {failed.Count} failed ("
            + string.Join("; ", failed.Select(o => $"{(o.Streamed ? "stream" : "plain")} {o.End} {o.Status} started {o.StartedAt.TotalSeconds:0.00}s")) + ")");

        // Only requests already running when the process died can fail; everything sent after goes to
        // the survivors. (A request nginx sends on a kept-alive connection in the moment the kernel
        // takes to close the dead process's sockets is in flight on it too: nginx does not resend a POST.)
        Assert.All(failed, o => Assert.True(o.StartedAt < deadAt + TimeSpan.FromMilliseconds(100), $"a request started at {o.StartedAt} after the process was gone at {deadAt} failed: {o.Detail}"));
        Assert.True(failed.Count <= 5, $"{failed.Count} requests failed, more than were in flight");
        Assert.Contains(outcomes, o => o.Ok && o.StartedAt > killedAt + TimeSpan.FromSeconds(1));
        Assert.All(failed.Where(o => o.Streamed), o => Assert.NotEqual(StreamEnd.Done, o.End));

        // Limits and usage across the two survivors: exact.
        await fleet.Balancer.WaitForRotationAsync(fleet.Replicas.Skip(1).Select(r => r.Port), TimeSpan.FromSeconds(10));
        var (limited, limitedId) = await fleet.CreateKeyAsync("""{"name":"survivors","rpm":20}""");
        var statuses = await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => ChatCalls.CompleteAsync(fleet.Balancer.Http, "chat", limited)));
        Assert.Equal(20, statuses.Count(s => s.Status == 200));
        Assert.Equal(10, statuses.Count(s => s.Status == 429));

        var usage = Stopwatch.StartNew();
        long requests = 0, errors = 0;
        while (requests != 30 || errors != 10)
        {
            Assert.True(usage.Elapsed < TimeSpan.FromSeconds(10), $"usage says {requests} requests and {errors} errors, not 30 and 10");
            (requests, errors) = await fleet.UsageAsync(fleet.Replicas[1], limitedId);
            await Task.Delay(100);
        }

        await victim.StartProcessAsync();
        await fleet.Balancer.WaitForRotationAsync(fleet.Replicas.Select(r => r.Port), TimeSpan.FromSeconds(10));
    }
}

/// <summary>The fleet, started once for <see cref="FleetTests"/>: process start-up takes seconds.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class FleetFixture : IAsyncLifetime
{
    public const string MasterKey = "mk-fleet-test";
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);

    private RedisServer _redis = null!;

    internal FakeUpstreamServer Upstream { get; private set; } = null!;

    internal ConfigMapVolume Routing { get; private set; } = null!;

    internal GatewayReplica[] Replicas { get; private set; } = [];

    /// <summary>What every replica's environment holds (the pod template's env).</summary>
    internal IReadOnlyDictionary<string, string> Environment { get; private set; } = new Dictionary<string, string>();

    internal NginxBalancer Balancer { get; private set; } = null!;

    internal static string RoutingYaml(FakeUpstreamServer upstream, string? extraRoute = null) => $$"""
        providers:
          - { name: p, kind: openai-compatible, baseUrl: "{{upstream.OpenAIBaseUrl}}" }
        deployments:
          - { name: d, provider: p, model: m }
        routes:
          - { name: chat, targets: [d] }
        {{(extraRoute is null ? string.Empty : $"  - {{ name: {extraRoute}, targets: [d] }}")}}
        """;

    public async Task InitializeAsync()
    {
        Upstream = await FakeUpstreamServer.StartAsync();

        // Streams of about a second: long enough to be in flight when a replica stops.
        Upstream.DefaultBehavior = new UpstreamBehavior { ChunkCount = 10, ChunkDelay = TimeSpan.FromMilliseconds(100) };
        _redis = await RedisServer.StartAsync();
        Routing = ConfigMapVolume.Create("routing.yaml", RoutingYaml(Upstream));

        // What the ha overlay sets, with a shorter delay: nginx here follows readiness within 100 ms.
        Environment = new Dictionary<string, string>
        {
            ["MODELGATEWAY_CONFIG"] = Routing.PathOf("routing.yaml"),
            ["MODELGATEWAY_MASTER_KEY"] = MasterKey,
            ["Auth__Mode"] = "keys",
            ["State__Redis"] = _redis.ConnectionString,
            ["State__CommandTimeout"] = "00:00:02",
            ["State__FailOpenReplicas"] = "3",
            ["Gateway__ConfigPollInterval"] = "00:00:01",
            ["Shutdown__Delay"] = "00:00:01",
            ["Shutdown__Grace"] = "00:00:20",
            ["Observability__AccessLog"] = "false",
        };
        Replicas = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => GatewayReplica.StartAsync($"replica-{i}", Environment)));
        Balancer = await NginxBalancer.StartAsync(Replicas);
    }

    internal async Task<(string Key, string Id)> CreateKeyAsync(string json) => await GracefulDrainTests.CreateKeyAsync(Replicas[^1].Http, MasterKey, json);

    internal async Task<(long Requests, long Errors)> UsageAsync(GatewayReplica replica, string keyId)
    {
        using var report = new HttpRequestMessage(HttpMethod.Get, $"admin/usage?key={keyId}");
        report.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await replica.Http.SendAsync(report);
        var rows = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
        return (rows.EnumerateArray().Sum(r => r.GetProperty("requests").GetInt64()), rows.EnumerateArray().Sum(r => r.GetProperty("errors").GetInt64()));
    }

    public async Task DisposeAsync()
    {
        if (Balancer is not null)
        {
            await Balancer.DisposeAsync();
        }

        foreach (var replica in Replicas)
        {
            await replica.DisposeAsync();
        }

        await _redis.DisposeAsync();
        await Upstream.DisposeAsync();
        Routing.Dispose();
    }
}

/// <summary>
/// A folder laid out as the kubelet lays out a ConfigMap volume: each file is a symlink through
/// <c>..data</c>, which points at a timestamped folder; an update writes a new folder and swaps
/// <c>..data</c> in one rename, so readers never see half a file.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class ConfigMapVolume : IDisposable
{
    private readonly string _file;
    private int _version;

    private ConfigMapVolume(string root, string file)
    {
        Root = root;
        _file = file;
    }

    public string Root { get; }

    public static ConfigMapVolume Create(string file, string text)
    {
        var volume = new ConfigMapVolume(Directory.CreateTempSubdirectory("modelgateway-configmap-").FullName, file);
        volume.Publish(text);
        File.CreateSymbolicLink(Path.Combine(volume.Root, file), Path.Combine("..data", file));
        return volume;
    }

    public string PathOf(string file) => Path.Combine(Root, file);

    /// <summary>Publishes a new version the kubelet's way: new folder, new link, atomic rename over <c>..data</c>.</summary>
    public void Publish(string text)
    {
        var version = $"..v{++_version}";
        var folder = Path.Combine(Root, version);
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, _file), text);
        var link = Path.Combine(Root, "..data_tmp");
        File.CreateSymbolicLink(link, version);
        using var rename = Process.Start(new ProcessStartInfo("mv", ["-Tf", link, Path.Combine(Root, "..data")]))!;
        rename.WaitForExit();
        if (rename.ExitCode != 0)
        {
            throw new InvalidOperationException("mv -T failed");
        }

        if (_version > 1)
        {
            Directory.Delete(Path.Combine(Root, $"..v{_version - 1}"), recursive: true);
        }
    }

    public void Dispose() => PublishedGateway.TryDelete(Root);
}
