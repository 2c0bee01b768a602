using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Tests.Protocols.Anthropic;

namespace ModelGateway.Tests.Caching;

/// <summary>
/// Two gateway hosts on one real Redis share one response cache: an entry filled on one is a hit on the
/// other, and admin purges and routing-file edits made on either reach both (the <c>mg:cache:purge</c>
/// channel), including entries a replica holds only in its own memory.
/// </summary>
public sealed class CacheReplicaTests : IAsyncLifetime
{
    private const string MasterKey = "mk-cache-replicas-9c2e";
    private const string Answer = "Both replicas know this answer.";
    private RedisServer _redis = null!;
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _a = null!;
    private GatewayHost _b = null!;
    private string _key = null!;
    private string _keyId = null!;

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 4 };
        var settings = new Dictionary<string, string?>
        {
            ["Auth:Mode"] = "keys",
            ["Admin:MasterKey"] = MasterKey,
            ["State:Redis"] = _redis.ConnectionString,
            ["State:UsageFlushInterval"] = "00:00:00.200",
        };
        _a = await GatewayHost.StartAsync(Config("10m"), settings);
        _b = await GatewayHost.StartAsync(Config("10m"), settings);
        (_key, _keyId) = await CreateKeyAsync("replica-cache");
    }

    public async Task DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        await _upstream.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private string Config(string ttl) => $$"""
        providers:
          - { name: openai, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
        deployments:
          - { name: gpt, provider: openai, model: gpt-4o, pricing: { input: 2.5, output: 10 } }
        routes:
          - { name: cached, targets: [gpt], cache: { ttl: {{ttl}} } }
        """;

    private async Task<(string Secret, string Id)> CreateKeyAsync(string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json($$"""{"name":"{{name}}"}""") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _a.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return (json.GetProperty("key").GetString()!, json.GetProperty("id").GetString()!);
    }

    private static string Prompt() => "Something both replicas should know " + Guid.NewGuid().ToString("N");

    private Task<string?> AskAsync(GatewayHost replica, string prompt, bool stream = false)
        => CacheTestRequests.CompletedAsync(replica, () => SendAsync(replica, prompt, stream));

    private async Task<string?> SendAsync(GatewayHost replica, string prompt, bool stream)
    {
        var body = JsonSerializer.Serialize(new { model = "cached", messages = new[] { new { role = "user", content = prompt } }, max_tokens = 200, stream });
        using var response = await replica.PostAsync("v1/chat/completions", body, _key);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(stream ? "Both" : Answer, text, StringComparison.Ordinal);
        return response.Headers.TryGetValues("x-modelgateway-cache", out var values) ? values.Single() : null;
    }

    private static async Task PurgeAsync(GatewayHost replica, string query)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, "admin/cache" + query);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await replica.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    // A purge published by one replica is applied by the other when the message arrives: wait for its log line.
    private static async Task PurgeArrivedAsync(GatewayHost replica)
        => Assert.NotEmpty(await replica.Logs.WaitForLinesAsync(l => l.Contains("purged by another replica", StringComparison.Ordinal), TimeSpan.FromSeconds(10)));

    [Fact]
    public async Task An_answer_filled_on_one_replica_is_a_hit_on_the_other_in_either_client_format()
    {
        var prompt = Prompt();
        var before = _upstream.RequestCount;

        var filled = await AskAsync(_a, prompt);
        var hitOnB = await AskAsync(_b, prompt);
        var streamedHitOnB = await AskAsync(_b, prompt, stream: true);
        var anthropic = await AnthropicClients.For(_b, _key).Messages.Create(new Anthropic.Models.Messages.MessageCreateParams { Model = "cached", MaxTokens = 200, Messages = [new Anthropic.Models.Messages.UserMessageParam(prompt)] });

        Assert.Equal("stored", filled);
        Assert.Equal("hit", hitOnB);
        Assert.Equal("hit", streamedHitOnB);
        Assert.True(Assert.Single(anthropic.Content).TryPickText(out var text));
        Assert.Equal(Answer, text!.Text);
        Assert.Equal(before + 1, _upstream.RequestCount);
    }

    [Fact]
    public async Task An_admin_purge_on_either_replica_drops_the_entry_on_both_including_the_one_held_in_memory()
    {
        var prompt = Prompt();
        var before = _upstream.RequestCount;

        // A holds the entry in its own memory; B has read it from Redis.
        Assert.Equal("stored", await AskAsync(_a, prompt));
        Assert.Equal("hit", await AskAsync(_b, prompt));

        await PurgeAsync(_b, "?route=cached");
        await PurgeArrivedAsync(_a);
        var onAAfterPurgeOnB = await AskAsync(_a, prompt);
        var onBAfterRefill = await AskAsync(_b, prompt);

        await PurgeAsync(_a, $"?route=cached&key={_keyId}");
        await PurgeArrivedAsync(_b);
        var onBAfterPurgeOnA = await AskAsync(_b, prompt);
        var onAAfterRefill = await AskAsync(_a, prompt);

        Assert.Equal("stored", onAAfterPurgeOnB);
        Assert.Equal("hit", onBAfterRefill);
        Assert.Equal("stored", onBAfterPurgeOnA);
        Assert.Equal("hit", onAAfterRefill);
        Assert.Equal(before + 3, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_routing_file_edit_of_a_cached_route_on_one_replica_purges_that_route_on_the_other()
    {
        var prompt = Prompt();
        var before = _upstream.RequestCount;
        Assert.Equal("stored", await AskAsync(_b, prompt));
        Assert.Equal("hit", await AskAsync(_b, prompt));

        Assert.True((await _a.EditConfigAsync(Config("20m"))).Succeeded);
        await PurgeArrivedAsync(_b);
        var onBAfterEdit = await AskAsync(_b, prompt);
        Assert.True((await _a.EditConfigAsync(Config("10m"))).Succeeded);

        Assert.Equal("stored", onBAfterEdit);
        Assert.Equal(before + 2, _upstream.RequestCount);
    }

    [Fact]
    public async Task Hits_on_either_replica_are_counted_in_the_shared_usage_with_what_they_saved()
    {
        var prompt = Prompt();
        Assert.Equal("stored", await AskAsync(_a, prompt));
        Assert.Equal("hit", await AskAsync(_b, prompt));
        Assert.Equal("hit", await AskAsync(_a, prompt, stream: true));

        // Each replica writes its merged totals every State:UsageFlushInterval (200 ms here).
        JsonElement row = default;
        for (var i = 0; i < 200 && (row.ValueKind != JsonValueKind.Object || row.GetProperty("requests").GetInt64() < 3); i++)
        {
            await Task.Delay(50);
            using var report = new HttpRequestMessage(HttpMethod.Get, $"admin/usage?key={_keyId}");
            report.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
            using var response = await _b.Http.SendAsync(report);
            var rows = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
            row = rows.GetArrayLength() == 1 ? rows[0].Clone() : default;
        }

        var spent = row.GetProperty("input_tokens").GetInt64() + row.GetProperty("output_tokens").GetInt64();
        Assert.Equal(3, row.GetProperty("requests").GetInt64());
        Assert.Equal(2, row.GetProperty("cache_hits").GetInt64());
        Assert.True(spent > 0);
        Assert.Equal(2 * spent, row.GetProperty("cache_saved_tokens").GetInt64());
        Assert.Equal(2 * row.GetProperty("cost_usd").GetDouble(), row.GetProperty("cache_saved_usd").GetDouble(), 9);
    }
}
