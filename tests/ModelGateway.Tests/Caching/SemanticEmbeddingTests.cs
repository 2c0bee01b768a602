using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Caching;

/// <summary>
/// The embeddings call behind a semantic lookup through the real host: it is the calling key's usage (an
/// embeddings request on the embeddings deployment, with its tokens and cost, in the admin usage report),
/// it goes through the same retries as a client's embeddings request, and when it fails for good the chat
/// request is served as a plain miss, never as an error.
/// </summary>
public sealed class SemanticEmbeddingTests : IAsyncLifetime
{
    private const string MasterKey = "mk-semantic-embed-7c2e";
    private const string Answer = "Open Settings, then Security, then Reset password.";
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey, WordEmbeddings = true, EmbeddingDimensions = 512 });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 3 };
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: openai, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: gpt, provider: openai, model: gpt-4o, pricing: { input: 2.5, output: 10 } }
              - { name: embedder, provider: openai, model: embed-model, capabilities: [embeddings], pricing: { input: 0.02, output: 0 } }
            routes:
              - name: faq
                targets: [gpt]
                cache: { ttl: 10m, scope: global, semantic: { deployment: embedder, threshold: 0.85, maxTemperature: 0.5 } }
            """, new Dictionary<string, string?> { ["Auth:Mode"] = "keys", ["Admin:MasterKey"] = MasterKey });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private int EmbeddingCalls => _upstream.Requests.Count(r => r.Path.EndsWith("/embeddings", StringComparison.Ordinal));

    private async Task<(string Secret, string Id)> CreateKeyAsync(string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json($$"""{"name":"{{name}}"}""") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _gateway.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return (json.GetProperty("key").GetString()!, json.GetProperty("id").GetString()!);
    }

    private async Task<(string? Cache, string Text)> AskAsync(string key, string prompt)
    {
        var body = JsonSerializer.Serialize(new { model = "faq", messages = new[] { new { role = "user", content = prompt } }, max_tokens = 100, temperature = 0 });
        using var response = await _gateway.PostAsync("v1/chat/completions", body, key);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (response.Headers.TryGetValues("x-modelgateway-cache", out var values) ? values.Single() : null, text);
    }

    // Usage is recorded just after each answer leaves: poll until the model's row has counted enough requests.
    // The embeddings calls are reported under the embeddings deployment's name as their model.
    private async Task<JsonElement> UsageRowAsync(string keyId, string model, long requests)
    {
        for (var i = 0; i < 200; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"admin/usage?key={keyId}&group_by=model");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
            using var response = await _gateway.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var rows = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
            foreach (var row in rows.EnumerateArray())
            {
                if (row.GetProperty("model").GetString() == model && row.GetProperty("requests").GetInt64() >= requests)
                {
                    return row.Clone();
                }
            }

            await Task.Delay(25);
        }

        throw new InvalidOperationException($"usage never counted {requests} requests on {model}");
    }

    [Fact]
    public async Task Each_semantic_lookup_embedding_is_an_embeddings_request_in_the_calling_keys_usage_with_its_tokens_and_cost()
    {
        var (key, id) = await CreateKeyAsync("semantic-usage");

        var stored = await AskAsync(key, "how do I reset the password of my work account quickly");
        var similar = await AskAsync(key, "how do I reset the password of my work account");

        Assert.Equal("stored", stored.Cache);
        Assert.Equal("hit", similar.Cache);
        var embeddings = await UsageRowAsync(id, "embedder", 2);
        Assert.Equal(2, embeddings.GetProperty("requests").GetInt64());
        Assert.Equal(0, embeddings.GetProperty("errors").GetInt64());
        Assert.True(embeddings.GetProperty("input_tokens").GetInt64() > 0, embeddings.ToString());
        Assert.True(embeddings.GetProperty("cost_usd").GetDouble() > 0, embeddings.ToString());
        // The chat requests keep their own row: one miss, one semantic hit.
        var chat = await UsageRowAsync(id, "faq", 2);
        Assert.Equal(2, chat.GetProperty("requests").GetInt64());
        Assert.Equal(1, chat.GetProperty("cache_hits").GetInt64());
    }

    [Fact]
    public async Task A_failed_embeddings_call_is_retried_and_one_that_keeps_failing_leaves_the_chat_request_a_plain_miss()
    {
        var (key, id) = await CreateKeyAsync("semantic-resilience");

        // One 500: the embeddings call is retried as a client's would be, and the lookup works.
        _upstream.Enqueue("embed-model", new UpstreamBehavior { StatusCode = 500 });
        var before = EmbeddingCalls;
        var stored = await AskAsync(key, "where can I download the quarterly expense report template");
        Assert.Equal("stored", stored.Cache);
        Assert.Equal(before + 2, EmbeddingCalls);
        var similar = await AskAsync(key, "where can I download the quarterly expense report template please");
        Assert.Equal("hit", similar.Cache);

        // Always 500: the chat request still gets its answer, as a semantic miss (fetched upstream and stored).
        _upstream.SetBehaviorForModel("embed-model", new UpstreamBehavior { StatusCode = 500 });
        var failing = await AskAsync(key, "which floor is the finance department on");
        _upstream.ClearBehaviorForModel("embed-model");

        Assert.Equal("stored", failing.Cache);
        Assert.Equal(Answer, JsonDocument.Parse(failing.Text).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        var embeddings = await UsageRowAsync(id, "embedder", 3);
        Assert.Equal(1, embeddings.GetProperty("errors").GetInt64());
    }
}
