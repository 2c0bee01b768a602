using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Caching;

/// <summary>
/// What a cache hit costs, through the real host: no provider tokens, no TPM and no budget, one request
/// against the key's RPM, and a usage row that counts it as a hit with the tokens and money it saved.
/// </summary>
public sealed class CacheAccountingTests : IAsyncLifetime
{
    private const string MasterKey = "mk-cache-accounting-51d0";
    private const string Answer = "Accounted for, once.";
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 3 };
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: openai, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: gpt, provider: openai, model: gpt-4o, pricing: { input: 2.5, output: 10 } }
              - { name: slow, provider: openai, model: slow-model, pricing: { input: 1, output: 2 } }
            routes:
              - { name: cached, targets: [gpt], cache: { ttl: 10m } }
              - { name: cached-slow, targets: [slow], cache: { ttl: 10m } }
            """, new Dictionary<string, string?> { ["Auth:Mode"] = "keys", ["Admin:MasterKey"] = MasterKey });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private async Task<(string Secret, string Id)> CreateKeyAsync(string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _gateway.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return (json.GetProperty("key").GetString()!, json.GetProperty("id").GetString()!);
    }

    private async Task<HttpResponseMessage> AskAsync(string key, string route, string prompt, bool stream = false)
    {
        var body = JsonSerializer.Serialize(new { model = route, messages = new[] { new { role = "user", content = prompt } }, max_tokens = 100, stream });
        var response = await _gateway.PostAsync("v1/chat/completions", body, key);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    private async Task<JsonElement> UsageAsync(string keyId)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"admin/usage?key={keyId}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _gateway.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return Assert.Single(JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data").EnumerateArray());
    }

    // A request's limits are settled, then its usage recorded, just after its answer leaves: wait for the record.
    private async Task<JsonElement> UsageAfterAsync(string keyId, long requests)
    {
        for (var i = 0; i < 200; i++)
        {
            try
            {
                var row = await UsageAsync(keyId);
                if (row.GetProperty("requests").GetInt64() >= requests)
                {
                    return row;
                }
            }
            catch (Xunit.Sdk.XunitException) when (i < 199)
            {
                // No row yet.
            }

            await Task.Delay(25);
        }

        throw new InvalidOperationException($"usage never counted {requests} requests");
    }

    private static long Header(HttpResponseMessage response, string name) => long.Parse(response.Headers.GetValues(name).Single(), System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task A_hit_counts_against_rpm_but_not_tpm_and_usage_records_it_as_a_hit_with_what_it_saved()
    {
        var (key, id) = await CreateKeyAsync("""{"name":"accounted","rpm":100,"tpm":100000,"budget_daily_usd":5}""");
        var prompt = "What does a hit cost? " + Guid.NewGuid().ToString("N");

        using var miss = await AskAsync(key, "cached", prompt);
        var afterMiss = await UsageAfterAsync(id, 1);
        using var hit = await AskAsync(key, "cached", prompt);
        await UsageAfterAsync(id, 2);
        using var streamedHit = await AskAsync(key, "cached", prompt, stream: true);
        var row = await UsageAfterAsync(id, 3);

        Assert.Equal("stored", miss.Headers.GetValues("x-modelgateway-cache").Single());
        Assert.Equal("hit", hit.Headers.GetValues("x-modelgateway-cache").Single());
        Assert.Equal("hit", streamedHit.Headers.GetValues("x-modelgateway-cache").Single());

        // RPM: each hit took one request from the window. TPM: the first hit spent nothing the second one sees.
        Assert.Equal(Header(hit, "x-ratelimit-remaining-requests") - 1, Header(streamedHit, "x-ratelimit-remaining-requests"));
        Assert.Equal(Header(hit, "x-ratelimit-remaining-tokens"), Header(streamedHit, "x-ratelimit-remaining-tokens"));

        // Usage: the provider tokens and cost are the miss's alone; the two hits are counted with what they saved.
        var missTokens = afterMiss.GetProperty("input_tokens").GetInt64() + afterMiss.GetProperty("output_tokens").GetInt64();
        var missCost = afterMiss.GetProperty("cost_usd").GetDouble();
        Assert.True(missTokens > 0);
        Assert.True(missCost > 0);
        Assert.Equal(3, row.GetProperty("requests").GetInt64());
        Assert.Equal(2, row.GetProperty("cache_hits").GetInt64());
        Assert.Equal(missTokens, row.GetProperty("input_tokens").GetInt64() + row.GetProperty("output_tokens").GetInt64());
        Assert.Equal(missCost, row.GetProperty("cost_usd").GetDouble(), 9);
        Assert.Equal(2 * missTokens, row.GetProperty("cache_saved_tokens").GetInt64());
        Assert.Equal(2 * missCost, row.GetProperty("cache_saved_usd").GetDouble(), 9);
        Assert.Equal(0, afterMiss.GetProperty("cache_hits").GetInt64());
    }

    [Fact]
    public async Task Streamed_followers_of_a_coalesced_flight_are_counted_as_hits()
    {
        var (key, id) = await CreateKeyAsync("""{"name":"coalesced"}""");
        var prompt = "Shared flight " + Guid.NewGuid().ToString("N");
        _upstream.SetBehaviorForModel("slow-model", new UpstreamBehavior { Content = Answer, ChunkCount = 3, HeaderDelay = TimeSpan.FromSeconds(2) });
        var before = _upstream.RequestCount;

        var responses = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => AskAsync(key, "cached-slow", prompt, stream: true)));
        var row = await UsageAfterAsync(id, 3);

        Assert.Equal(before + 1, _upstream.RequestCount);
        Assert.Equal(2, responses.Count(r => r.Headers.GetValues("x-modelgateway-cache").Single() == "hit"));
        Assert.Equal(2, row.GetProperty("cache_hits").GetInt64());
        Assert.Equal(2 * (row.GetProperty("input_tokens").GetInt64() + row.GetProperty("output_tokens").GetInt64()), row.GetProperty("cache_saved_tokens").GetInt64());
        Assert.Equal(2 * row.GetProperty("cost_usd").GetDouble(), row.GetProperty("cache_saved_usd").GetDouble(), 9);
        foreach (var response in responses)
        {
            response.Dispose();
        }

        _upstream.ClearBehaviorForModel("slow-model");
    }
}
