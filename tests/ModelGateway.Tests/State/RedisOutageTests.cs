using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.State;

/// <summary>Redis going away never causes a 500: the gateway follows its policy, reports degraded health, and recovers by itself.</summary>
public sealed class RedisOutageTests : IAsyncLifetime
{
    private const string MasterKey = "mk-outage-test";
    private FakeUpstreamServer _upstream = null!;
    private RedisServer _redis = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        // Run as the docs tell operators to: with an append-only file, so a restart keeps keys and spend.
        _redis = await RedisServer.StartAsync(persistent: true);
    }

    public async Task DisposeAsync()
    {
        await _redis.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private Task<GatewayHost> StartGatewayAsync(string policy, string auth = "keys", RedisServer? redis = null) => GatewayHost.StartAsync($$"""
        providers:
          - { name: p, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
        deployments:
          - { name: d, provider: p, model: m }
        routes:
          - { name: chat, targets: [d] }
        """, new Dictionary<string, string?>
        {
            ["State:Redis"] = (redis ?? _redis).ConnectionString,
            ["State:FailurePolicy"] = policy,
            ["Auth:Mode"] = auth,
            ["Admin:MasterKey"] = MasterKey,
        });

    private static async Task<string> CreateKeyAsync(GatewayHost gateway, string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await gateway.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
    }

    private static Task<HttpResponseMessage> ChatAsync(GatewayHost gateway, string? key)
        => gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""", bearer: key);

    private static async Task<string> ReadinessAsync(GatewayHost gateway) => (await RedisCheckAsync(gateway)).Status;

    private static async Task<(string Status, string Description)> RedisCheckAsync(GatewayHost gateway)
    {
        using var response = await gateway.Http.GetAsync("healthz/ready");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var check = json.RootElement.GetProperty("checks").GetProperty("redis");
        return (check.GetProperty("status").GetString()!, check.TryGetProperty("description", out var description) ? description.GetString()! : string.Empty);
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(15))
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail(what);
    }

    [Fact]
    public async Task Fail_open_keeps_serving_with_local_limits_and_recovers_when_redis_returns()
    {
        await using var gateway = await StartGatewayAsync("FailOpen");
        var key = await CreateKeyAsync(gateway, """{"name":"steady","rpm":1000}""");
        using (var warm = await ChatAsync(gateway, key))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }

        await _redis.StopAsync();
        for (var i = 0; i < 5; i++)
        {
            using var response = await ChatAsync(gateway, key);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal("degraded", await ReadinessAsync(gateway));
        using (var live = await gateway.Http.GetAsync("healthz/live"))
        {
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        }

        await _redis.StartProcessAsync();
        await EventuallyAsync(async () => await ReadinessAsync(gateway) == "healthy", "the gateway did not notice Redis was back");

        // Back on Redis: the key was written to Redis (and its append-only file) before the outage.
        using var after = await ChatAsync(gateway, key);
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task Fail_closed_refuses_keyed_requests_with_503_never_500()
    {
        await using var gateway = await StartGatewayAsync("FailClosed");
        var key = await CreateKeyAsync(gateway, """{"name":"strict","rpm":1000}""");
        (await ChatAsync(gateway, key)).Dispose();

        await _redis.StopAsync();
        using var response = await ChatAsync(gateway, key);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("limit_store_unavailable", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.True(response.Headers.Contains("retry-after"));
        Assert.Equal("unhealthy", await ReadinessAsync(gateway));
    }

    [Fact]
    public async Task The_gateway_starts_while_redis_is_down_and_reports_degraded_health()
    {
        await _redis.StopAsync();

        await using var gateway = await StartGatewayAsync("FailOpen", auth: "none");
        using var chat = await ChatAsync(gateway, null);

        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        Assert.Equal("degraded", await ReadinessAsync(gateway));

        await _redis.StartProcessAsync();
        await EventuallyAsync(async () => await ReadinessAsync(gateway) == "healthy", "the gateway did not connect once Redis started");
    }

    [Fact]
    public async Task Usage_recorded_during_an_outage_is_written_when_redis_returns()
    {
        await using var gateway = await StartGatewayAsync("FailOpen", auth: "none");
        await _redis.StopAsync();
        for (var i = 0; i < 3; i++)
        {
            (await ChatAsync(gateway, null)).Dispose();
        }

        await _redis.StartProcessAsync();
        await EventuallyAsync(async () => await ReadinessAsync(gateway) == "healthy", "Redis did not come back");
        await EventuallyAsync(async () =>
        {
            using var response = await gateway.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "admin/usage?group_by=deployment") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", MasterKey) } });
            var body = await response.Content.ReadAsStringAsync();
            return body.Contains("\"requests\":3", StringComparison.Ordinal);
        }, "usage held during the outage was not written");
    }

    [Fact]
    public async Task A_redis_that_comes_back_without_the_gateways_data_is_reported_not_served_silently()
    {
        // Redis as the issue found it: no persistence, so a restart empties it.
        await using var bare = await RedisServer.StartAsync();
        await using var gateway = await StartGatewayAsync("FailOpen", redis: bare);
        var key = await CreateKeyAsync(gateway, """{"name":"lost","rpm":1000}""");
        using (var before = await ChatAsync(gateway, key))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        await bare.StopAsync();
        await bare.StartProcessAsync();

        // Readiness stays 200 (degraded) so the replica keeps serving what it can, and says why.
        await EventuallyAsync(async () => (await RedisCheckAsync(gateway)).Description.Contains("without the gateway's data", StringComparison.Ordinal),
            "the gateway did not report that Redis lost its data");
        Assert.Equal("degraded", await ReadinessAsync(gateway));
        Assert.Contains(gateway.Logs.Lines, line => line.StartsWith("Critical", StringComparison.Ordinal) && line.Contains("without the gateway's data", StringComparison.Ordinal));
    }
}
