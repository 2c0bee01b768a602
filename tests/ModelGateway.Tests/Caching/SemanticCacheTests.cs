using System.Globalization;
using System.Net;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Caching;

/// <summary>
/// The semantic cache through the real host: a prompt similar enough to a stored one is answered with
/// that answer (and says how similar), one below the threshold is not, requests with tools or a high
/// temperature are never answered semantically, and replicas on one Redis find each other's prompts.
/// The fake upstream embeds as a hashed bag of words, so similarity is word overlap.
/// </summary>
public sealed class SemanticCacheTests : IAsyncLifetime
{
    private const string Answer = "Open Settings, then Security, then Reset password.";
    private const string Stored = "how do I reset the password of my work account quickly";
    private FakeUpstreamServer _upstream = null!;
    private RedisServer _redis = null!;
    private readonly List<GatewayHost> _replicas = [];

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey, WordEmbeddings = true, EmbeddingDimensions = 512 });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 3 };
        _redis = await RedisServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            await replica.DisposeAsync();
        }

        await _upstream.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private string Config => $$"""
        providers:
          - { name: openai, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
        deployments:
          - { name: gpt, provider: openai, model: gpt-4o, pricing: { input: 2.5, output: 10 } }
          - { name: embedder, provider: openai, model: embed-model, capabilities: [embeddings] }
        routes:
          - name: faq
            targets: [gpt]
            cache: { ttl: 10m, scope: global, semantic: { deployment: embedder, threshold: 0.85, maxTemperature: 0.5 } }
        """;

    private async Task<GatewayHost> StartReplicaAsync()
    {
        var replica = await GatewayHost.StartAsync(Config, new Dictionary<string, string?> { ["State:Redis"] = _redis.ConnectionString });
        _replicas.Add(replica);
        return replica;
    }

    private int ChatCalls => _upstream.Requests.Count(r => r.Path.EndsWith("/chat/completions", StringComparison.Ordinal));

    private int EmbeddingCalls => _upstream.Requests.Count(r => r.Path.EndsWith("/embeddings", StringComparison.Ordinal));

    private static Task<(string? Cache, float? Similarity, string Text)> AskAsync(GatewayHost replica, string prompt, double? temperature = 0, bool tools = false, bool stream = false)
        => CacheTestRequests.CompletedAsync(replica, () => SendAsync(replica, prompt, temperature, tools, stream));

    private static async Task<(string? Cache, float? Similarity, string Text)> SendAsync(GatewayHost replica, string prompt, double? temperature, bool tools, bool stream)
    {
        var body = new Dictionary<string, object?>
        {
            ["model"] = "faq",
            ["messages"] = new[] { new { role = "user", content = prompt } },
            ["max_tokens"] = 100,
            ["stream"] = stream,
        };
        if (temperature is not null)
        {
            body["temperature"] = temperature;
        }

        if (tools)
        {
            body["tools"] = new[] { new { type = "function", function = new { name = "lookup", parameters = new { type = "object" } } } };
        }

        using var response = await replica.PostAsync("v1/chat/completions", JsonSerializer.Serialize(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var cache = response.Headers.TryGetValues("x-modelgateway-cache", out var c) ? c.Single() : null;
        float? similarity = response.Headers.TryGetValues("x-modelgateway-cache-similarity", out var s) ? float.Parse(s.Single(), CultureInfo.InvariantCulture) : null;
        return (cache, similarity, text);
    }

    [Fact]
    public async Task A_similar_prompt_above_the_threshold_is_a_hit_that_says_how_similar_and_one_below_it_misses()
    {
        var gateway = await StartReplicaAsync();
        var stored = await AskAsync(gateway, Stored);
        var chatCalls = ChatCalls;

        var similar = await AskAsync(gateway, "how do I reset the password of my work account");
        var similarStreamed = await AskAsync(gateway, "how do I reset the password of my work account", stream: true);
        var afterSimilar = ChatCalls;
        var different = await AskAsync(gateway, "what is the capital city of France");

        Assert.Equal("stored", stored.Cache);
        Assert.Null(stored.Similarity);
        Assert.Equal("hit", similar.Cache);
        Assert.InRange(similar.Similarity!.Value, 0.85f, 0.999f);
        Assert.Equal(Answer, JsonDocument.Parse(similar.Text).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("hit", similarStreamed.Cache);
        Assert.EndsWith("data: [DONE]\n\n", similarStreamed.Text, StringComparison.Ordinal);
        Assert.Equal(chatCalls, afterSimilar);
        Assert.Equal("stored", different.Cache);
        Assert.Null(different.Similarity);
        Assert.Equal(afterSimilar + 1, ChatCalls);
    }

    [Fact]
    public async Task Requests_with_tools_or_a_temperature_above_the_bound_are_never_answered_semantically()
    {
        var gateway = await StartReplicaAsync();
        Assert.Equal("stored", (await AskAsync(gateway, Stored)).Cache);
        var embeddings = EmbeddingCalls;

        var withTools = await AskAsync(gateway, "how do I reset the password of my work account", tools: true);
        var hot = await AskAsync(gateway, "how do I reset the password of my account", temperature: 0.9);
        var defaultTemperature = await AskAsync(gateway, "how do I reset the password for my work account", temperature: null);

        Assert.Equal("stored", withTools.Cache);
        Assert.Equal("stored", hot.Cache);
        Assert.Equal("stored", defaultTemperature.Cache);
        Assert.Null(withTools.Similarity);
        Assert.Null(hot.Similarity);

        // None of them was even embedded.
        Assert.Equal(embeddings, EmbeddingCalls);
    }

    [Fact]
    public async Task Replicas_on_one_redis_find_each_others_prompts_live_and_after_a_start()
    {
        var a = await StartReplicaAsync();
        var b = await StartReplicaAsync();
        Assert.Equal("stored", (await AskAsync(a, Stored)).Cache);
        var chatCalls = ChatCalls;

        // B was running: the prompt reached it on mg:cache:semantic. C starts now: it loads the prompts from Redis.
        var onB = await EventuallyHitAsync(b, "how do I reset the password of my work account");
        var c = await StartReplicaAsync();
        var onC = await EventuallyHitAsync(c, "how do I reset the password for my work account quickly");

        Assert.InRange(onB.Similarity!.Value, 0.85f, 0.999f);
        Assert.InRange(onC.Similarity!.Value, 0.85f, 0.999f);
        Assert.Equal(chatCalls, ChatCalls);
    }

    [Fact]
    public async Task Explain_says_whether_a_request_could_be_answered_by_a_similar_prompt_and_why_not()
    {
        var gateway = await StartReplicaAsync();

        async Task<JsonElement> ExplainAsync(string body)
        {
            using var response = await gateway.PostAsync("v1/route/explain", body);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("cache").GetProperty("semantic");
        }

        var cold = await ExplainAsync("""{"model":"faq","temperature":0,"messages":[{"role":"user","content":"reset my password"}]}""");
        var hot = await ExplainAsync("""{"model":"faq","temperature":1.2,"messages":[{"role":"user","content":"reset my password"}]}""");
        var tools = await ExplainAsync("""{"model":"faq","temperature":0,"messages":[{"role":"user","content":"reset my password"}],"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]}""");

        Assert.True(cold.GetProperty("eligible").GetBoolean());
        Assert.Equal("embedder", cold.GetProperty("deployment").GetString());
        Assert.Equal(0.85, cold.GetProperty("threshold").GetDouble(), 3);
        Assert.False(hot.GetProperty("eligible").GetBoolean());
        Assert.Contains("maxTemperature", hot.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.False(tools.GetProperty("eligible").GetBoolean());
        Assert.Contains("tools", tools.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_semantic_block_is_refused_with_every_problem_and_its_path()
    {
        var gateway = await StartReplicaAsync();

        var result = await gateway.EditConfigAsync(Config.Replace("semantic: { deployment: embedder, threshold: 0.85, maxTemperature: 0.5 }", "semantic: { deployment: gpt, threshold: 1.5, maxTemperature: 3, maxEntries: 0 }", StringComparison.Ordinal));

        Assert.False(result.Succeeded);
        Assert.Contains(result.Errors, e => e.Path == "routes[0].cache.semantic.deployment" && e.Message.Contains("embeddings", StringComparison.Ordinal));
        Assert.Contains(result.Errors, e => e.Path == "routes[0].cache.semantic.threshold");
        Assert.Contains(result.Errors, e => e.Path == "routes[0].cache.semantic.maxTemperature");
        Assert.Contains(result.Errors, e => e.Path == "routes[0].cache.semantic.maxEntries");
    }

    // The published prompt arrives a moment after the answer that stored it; a miss here would call upstream, so wait for the index first.
    private static async Task<(string? Cache, float? Similarity, string Text)> EventuallyHitAsync(GatewayHost replica, string prompt)
    {
        var semantic = replica.Service<ModelGateway.Caching.SemanticCache>();
        var settings = replica.Service<ModelGateway.Configuration.RoutingConfigManager>().Current.Routes["faq"].Cache!;
        for (var i = 0; i < 200 && !semantic.Holds("faq", settings, "global"); i++)
        {
            await Task.Delay(25);
        }

        var result = await AskAsync(replica, prompt);
        Assert.Equal("hit", result.Cache);
        return result;
    }
}
