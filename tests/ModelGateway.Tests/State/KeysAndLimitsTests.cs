using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.State;

/// <summary>
/// Virtual keys, limits, budgets and usage through the real host, the same way with in-memory state
/// and with Redis state.
/// </summary>
public abstract class KeysAndLimitsTests : IAsyncLifetime
{
    protected const string MasterKey = "mk-test-master-key-8c1d2e";
    private FakeUpstreamServer _upstream = null!;

    private protected GatewayHost Gateway { get; private set; } = null!;

    protected FakeUpstreamServer Upstream => _upstream;

    protected abstract IDictionary<string, string?> StateSettings { get; }

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        Gateway = await StartGatewayAsync();
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private protected Task<GatewayHost> StartGatewayAsync(IDictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>(StateSettings)
        {
            ["Auth:Mode"] = "keys",
            ["Admin:MasterKey"] = MasterKey,
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return GatewayHost.StartAsync($$"""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
            deployments:
              - { name: mini, provider: p, model: mini-model, pricing: { input: 1000, output: 1000 } }
              - { name: big, provider: p, model: big-model, pricing: { input: 1000, output: 1000 } }
            routes:
              - { name: gpt-4o-mini, targets: [mini] }
              - { name: gpt-4o, targets: [big] }
            """, settings);
    }

    private protected async Task<JsonElement> CreateKeyAsync(string json, GatewayHost? gateway = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json(json) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await (gateway ?? Gateway).Http.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}\n{(gateway ?? Gateway).Logs.All}");
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.Clone();
    }

    protected async Task<HttpResponseMessage> AdminAsync(HttpMethod method, string path, string? json = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = json is null ? null : GatewayHost.Json(json) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        return await Gateway.Http.SendAsync(request);
    }

    private protected static Task<HttpResponseMessage> ChatAsync(GatewayHost gateway, string? key, string model = "gpt-4o-mini", bool azureHeader = false)
        => gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]}""",
            bearer: azureHeader ? null : key,
            headers: h =>
            {
                if (azureHeader && key is not null)
                {
                    h.Add("api-key", key);
                }
            });

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response)
    {
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("error").Clone();
    }

    [Fact]
    public async Task A_created_key_is_shown_once_and_works_as_bearer_or_api_key()
    {
        var created = await CreateKeyAsync("""{"name":"ci-bot","team":"platform","metadata":{"ticket":"OPS-1"}}""");
        var secret = created.GetProperty("key").GetString()!;
        var id = created.GetProperty("id").GetString()!;

        Assert.StartsWith("sk-mg-", secret, StringComparison.Ordinal);
        Assert.False(created.TryGetProperty("hash", out _));
        using var bearer = await ChatAsync(Gateway, secret);
        using var azureStyle = await ChatAsync(Gateway, secret, azureHeader: true);
        Assert.Equal(HttpStatusCode.OK, bearer.StatusCode);
        Assert.Equal(HttpStatusCode.OK, azureStyle.StatusCode);

        using var list = await AdminAsync(HttpMethod.Get, "admin/keys");
        var listed = await list.Content.ReadAsStringAsync();
        Assert.True(listed.Contains(id, StringComparison.Ordinal), listed + "\n" + Gateway.Logs.All);
        Assert.DoesNotContain(secret, listed, StringComparison.Ordinal);
        Assert.Contains("\"ticket\":\"OPS-1\"", listed, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Missing_wrong_and_revoked_keys_get_401()
    {
        var created = await CreateKeyAsync("""{"name":"short-lived"}""");
        var secret = created.GetProperty("key").GetString()!;

        using var missing = await ChatAsync(Gateway, null);
        using var wrong = await ChatAsync(Gateway, "sk-mg-not-a-real-key-123456789");
        using var revoke = await AdminAsync(HttpMethod.Delete, $"admin/keys/{created.GetProperty("id").GetString()}");
        using var revoked = await ChatAsync(Gateway, secret);

        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("invalid_api_key", (await ErrorAsync(wrong)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, revoked.StatusCode);
        Assert.Contains("revoked", (await ErrorAsync(revoked)).GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, Upstream.RequestCount);
    }

    [Fact]
    public async Task An_expired_key_gets_401()
    {
        var expires = DateTimeOffset.UtcNow.AddSeconds(1.5).ToString("O");
        var created = await CreateKeyAsync($$"""{"name":"expiring","expires_at":"{{expires}}"}""");
        var secret = created.GetProperty("key").GetString()!;
        using var before = await ChatAsync(Gateway, secret);

        await Task.Delay(TimeSpan.FromSeconds(2));
        using var after = await ChatAsync(Gateway, secret);

        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Contains("expired", (await ErrorAsync(after)).GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_only_sees_and_calls_the_models_it_is_allowed()
    {
        var secret = (await CreateKeyAsync("""{"name":"mini-only","models":["gpt-4o-mini*"]}""")).GetProperty("key").GetString()!;

        using var allowed = await ChatAsync(Gateway, secret, "gpt-4o-mini");
        using var forbidden = await ChatAsync(Gateway, secret, "gpt-4o");
        using var models = new HttpRequestMessage(HttpMethod.Get, "v1/models");
        models.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        using var listed = await Gateway.Http.SendAsync(models);
        var ids = JsonDocument.Parse(await listed.Content.ReadAsStringAsync()).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();

        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Equal("model_not_allowed", (await ErrorAsync(forbidden)).GetProperty("code").GetString());
        Assert.Equal(["gpt-4o-mini"], ids);
    }

    [Fact]
    public async Task Rate_limit_headers_are_on_every_response_and_the_limit_answers_429_with_retry_after()
    {
        var secret = (await CreateKeyAsync("""{"name":"limited","rpm":3,"tpm":100000}""")).GetProperty("key").GetString()!;

        var responses = new List<HttpResponseMessage>();
        for (var i = 0; i < 4; i++)
        {
            responses.Add(await ChatAsync(Gateway, secret));
        }

        Assert.All(responses.Take(3), r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal("3", responses[0].Headers.GetValues("x-ratelimit-limit-requests").Single());
        Assert.Equal("2", responses[0].Headers.GetValues("x-ratelimit-remaining-requests").Single());
        Assert.Equal("100000", responses[0].Headers.GetValues("x-ratelimit-limit-tokens").Single());
        Assert.True(responses[0].Headers.Contains("x-ratelimit-remaining-tokens"));
        Assert.EndsWith("s", responses[0].Headers.GetValues("x-ratelimit-reset-requests").Single(), StringComparison.Ordinal);
        var refused = responses[3];
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.InRange(int.Parse(refused.Headers.GetValues("retry-after").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 60);
        Assert.Equal("0", refused.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        Assert.Equal("rate_limit_exceeded", (await ErrorAsync(refused)).GetProperty("code").GetString());
        Assert.Equal(3, Upstream.RequestCount);
        responses.ForEach(r => r.Dispose());
    }

    [Fact]
    public async Task A_key_past_its_budget_gets_insufficient_quota_which_is_not_retryable()
    {
        // Prices are $1000 per million tokens: one small request costs about a cent.
        var secret = (await CreateKeyAsync("""{"name":"budgeted","budget_daily_usd":0.005}""")).GetProperty("key").GetString()!;

        using var first = await ChatAsync(Gateway, secret);
        using var second = await ChatAsync(Gateway, secret);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        Assert.Equal("insufficient_quota", (await ErrorAsync(second)).GetProperty("code").GetString());
        Assert.Equal("false", second.Headers.GetValues("x-should-retry").Single());
    }

    [Fact]
    public async Task Usage_is_reported_by_key_team_model_and_deployment_and_a_key_reads_its_own()
    {
        var alpha = (await CreateKeyAsync("""{"name":"alpha","team":"search"}""")).GetProperty("key").GetString()!;
        var beta = (await CreateKeyAsync("""{"name":"beta","team":"ads"}""")).GetProperty("key").GetString()!;
        (await ChatAsync(Gateway, alpha)).Dispose();
        (await ChatAsync(Gateway, alpha, "gpt-4o")).Dispose();
        (await ChatAsync(Gateway, beta)).Dispose();

        var byKey = await UsageAsync("admin/usage?group_by=key");
        var byTeam = await UsageAsync("admin/usage?group_by=team");
        var byDeployment = await UsageAsync("admin/usage?group_by=deployment&team=search");
        using var own = new HttpRequestMessage(HttpMethod.Get, "v1/usage?group_by=model");
        own.Headers.Authorization = new AuthenticationHeaderValue("Bearer", beta);
        using var ownResponse = await Gateway.Http.SendAsync(own);
        var ownRows = JsonDocument.Parse(await ownResponse.Content.ReadAsStringAsync()).RootElement.GetProperty("data");

        Assert.Equal(2, byKey.Single(r => r.GetProperty("key").GetString() == "alpha").GetProperty("requests").GetInt64());
        Assert.Equal(1, byTeam.Single(r => r.GetProperty("team").GetString() == "ads").GetProperty("requests").GetInt64());
        Assert.Equal(1, byDeployment.Single(r => r.GetProperty("deployment").GetString() == "mini").GetProperty("requests").GetInt64());
        Assert.Equal(1, byDeployment.Single(r => r.GetProperty("deployment").GetString() == "big").GetProperty("requests").GetInt64());
        Assert.True(byKey.Single(r => r.GetProperty("key").GetString() == "alpha").GetProperty("output_tokens").GetInt64() > 0);
        Assert.True(byKey.Single(r => r.GetProperty("key").GetString() == "alpha").GetProperty("cost_usd").GetDouble() > 0);
        var row = Assert.Single(ownRows.EnumerateArray());
        Assert.Equal("gpt-4o-mini", row.GetProperty("model").GetString());
        Assert.Equal(1, row.GetProperty("requests").GetInt64());
    }

    [Fact]
    public async Task The_admin_api_needs_the_master_key()
    {
        var client = await CreateKeyAsync("""{"name":"not-an-admin"}""");
        using var request = new HttpRequestMessage(HttpMethod.Get, "admin/keys");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", client.GetProperty("key").GetString());

        using var response = await Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task Bad_key_requests_are_refused_with_a_clear_400()
    {
        using var noName = await AdminAsync(HttpMethod.Post, "admin/keys", """{"rpm":5}""");
        using var negative = await AdminAsync(HttpMethod.Post, "admin/keys", """{"name":"x","rpm":-5}""");
        using var unknown = await AdminAsync(HttpMethod.Post, "admin/keys", """{"name":"x","rpmm":5}""");

        Assert.Equal(HttpStatusCode.BadRequest, noName.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, negative.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Contains("rpmm", await unknown.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private async Task<List<JsonElement>> UsageAsync(string path)
    {
        using var response = await AdminAsync(HttpMethod.Get, path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("data").EnumerateArray().Select(e => e.Clone()).ToList();
    }
}

public sealed class InMemoryKeysAndLimitsTests : KeysAndLimitsTests
{
    protected override IDictionary<string, string?> StateSettings { get; } = new Dictionary<string, string?>();
}

public sealed class RedisKeysAndLimitsTests(RedisFixture redis) : KeysAndLimitsTests, IClassFixture<RedisFixture>
{
    protected override IDictionary<string, string?> StateSettings { get; } = new Dictionary<string, string?> { ["State:Redis"] = redis.Server.ConnectionString };

    [Fact]
    public async Task Limits_keep_counting_after_redis_forgets_its_scripts()
    {
        // The gateway calls its Lua scripts by hash; a restarted or flushed Redis no longer knows them.
        var secret = (await CreateKeyAsync("""{"name":"flushed","rpm":3,"tpm":100000}""")).GetProperty("key").GetString()!;
        using (var first = await ChatAsync(Gateway, secret))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        await using (var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync($"{redis.Server.ConnectionString},allowAdmin=true"))
        {
            await admin.GetServer(redis.Server.ConnectionString).ScriptFlushAsync();
        }

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await ChatAsync(Gateway, secret);
            statuses.Add(response.StatusCode);
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
    }
}

[Collection(RedisClusterCollection.Name)]
public sealed class RedisClusterKeysAndLimitsTests(RedisClusterFixture cluster) : KeysAndLimitsTests
{
    protected override IDictionary<string, string?> StateSettings { get; } = new Dictionary<string, string?> { ["State:Redis"] = cluster.Cluster.ConnectionString };
}
