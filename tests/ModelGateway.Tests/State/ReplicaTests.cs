using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.State;

/// <summary>Three gateway processes sharing one Redis behave as one gateway: limits are held exactly, revocations are immediate.</summary>
public sealed class ReplicaTests(ReplicaFixture fixture) : IClassFixture<ReplicaFixture>
{
    private const string MasterKey = ReplicaFixture.MasterKey;
    private readonly GatewayProcess[] _replicas = fixture.Replicas;
    private readonly FakeUpstreamServer _upstream = fixture.Upstream;

    private async Task<(string Secret, string Id)> CreateKeyAsync(string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _replicas[0].Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return (json.GetProperty("key").GetString()!, json.GetProperty("id").GetString()!);
    }

    private static async Task<HttpStatusCode> ChatAsync(GatewayProcess replica, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = GatewayHost.Json("""{"model":"chat","messages":[{"role":"user","content":"hi"}]}""") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await replica.Http.SendAsync(request);
        if (response.StatusCode == HttpStatusCode.TooManyRequests)
        {
            Assert.True(response.Headers.Contains("retry-after"));
        }

        return response.StatusCode;
    }

    [Fact]
    public async Task A_global_rpm_limit_is_held_exactly_across_three_replicas_under_concurrent_load()
    {
        var (key, _) = await CreateKeyAsync("""{"name":"shared-limit","rpm":30}""");

        // 90 concurrent requests, spread over the three replicas, all inside one minute.
        var upstreamBefore = _upstream.RequestCount;
        var clock = Stopwatch.StartNew();
        var statuses = await Task.WhenAll(Enumerable.Range(0, 90).Select(i => ChatAsync(_replicas[i % 3], key)));
        clock.Stop();

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(50), $"the burst took {clock.Elapsed}, too close to the window");
        Assert.Equal(30, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(60, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
        Assert.Equal(30, _upstream.RequestCount - upstreamBefore);
    }

    [Fact]
    public async Task Usage_served_by_every_replica_adds_up_in_one_report_on_any_replica()
    {
        var (key, id) = await CreateKeyAsync("""{"name":"usage-across-replicas"}""");
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await ChatAsync(_replicas[i % 3], key));
        }

        // Each replica writes its merged totals within State:UsageFlushInterval (1 s); a report on any one
        // replica then counts all six requests.
        var clock = Stopwatch.StartNew();
        long requests = 0;
        while (requests != 6)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the report counted {requests} of 6 requests");
            using var report = new HttpRequestMessage(HttpMethod.Get, $"admin/usage?key={id}");
            report.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
            using var response = await _replicas[2].Http.SendAsync(report);
            var rows = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
            requests = rows.EnumerateArray().Sum(row => row.GetProperty("requests").GetInt64());
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_key_revoked_on_one_replica_is_refused_by_the_others_at_once()
    {
        var (key, id) = await CreateKeyAsync("""{"name":"soon-revoked"}""");
        foreach (var replica in _replicas)
        {
            Assert.Equal(HttpStatusCode.OK, await ChatAsync(replica, key));
        }

        using var revoke = new HttpRequestMessage(HttpMethod.Delete, $"admin/keys/{id}");
        revoke.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using (var revoked = await _replicas[0].Http.SendAsync(revoke))
        {
            Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        }

        // The other replicas had the key cached for 30 seconds; the change notice reaches them within moments.
        var clock = Stopwatch.StartNew();
        foreach (var replica in _replicas.Skip(1))
        {
            while (await ChatAsync(replica, key) != HttpStatusCode.Unauthorized)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), "a revoked key kept working on another replica");
                await Task.Delay(20);
            }
        }
    }
}

/// <summary>Starts the three replicas once for the class: process start-up takes seconds.</summary>
public sealed class ReplicaFixture : IAsyncLifetime
{
    public const string MasterKey = "mk-replica-test";
    private RedisServer _redis = null!;
    private string _directory = null!;

    internal FakeUpstreamServer Upstream { get; private set; } = null!;

    internal GatewayProcess[] Replicas { get; private set; } = [];

    public async Task InitializeAsync()
    {
        Upstream = await FakeUpstreamServer.StartAsync();
        _redis = await RedisServer.StartAsync();
        _directory = Directory.CreateTempSubdirectory("modelgateway-replicas-").FullName;
        var config = Path.Combine(_directory, "routing.yaml");
        await File.WriteAllTextAsync(config, $$"""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: "{{Upstream.OpenAIBaseUrl}}" }
            deployments:
              - { name: d, provider: p, model: m }
            routes:
              - { name: chat, targets: [d] }
            """);
        var settings = new Dictionary<string, string>
        {
            ["State:Redis"] = _redis.ConnectionString,
            ["State:CommandTimeout"] = "00:00:02",
            ["Auth:Mode"] = "keys",
            ["Admin:MasterKey"] = MasterKey,
            ["Observability:AccessLog"] = "false",
        };
        Replicas = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => GatewayProcess.StartAsync(config, settings)));
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in Replicas)
        {
            await replica.DisposeAsync();
        }

        await _redis.DisposeAsync();
        await Upstream.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
