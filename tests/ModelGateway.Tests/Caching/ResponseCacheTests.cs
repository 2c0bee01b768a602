using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Anthropic.Models.Messages;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Tests.Protocols.Anthropic;
using OpenAI.Chat;

namespace ModelGateway.Tests.Caching;

/// <summary>
/// The exact response cache through the real host, with the official OpenAI and Anthropic SDKs as
/// clients: an entry filled through one API answers the other, keys never share, the request's
/// Cache-Control is honoured, and nothing broken or cut short is ever stored.
/// </summary>
public sealed class ResponseCacheTests : IAsyncLifetime
{
    private const string MasterKey = "mk-cache-test-4f1a";
    private const string Answer = "A cached answer travels well between client formats.";
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;
    private string _keyA = null!;
    private string _keyB = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5 };
        _gateway = await GatewayHost.StartAsync(Config("10m"), new Dictionary<string, string?>
        {
            ["Auth:Mode"] = "keys",
            ["Admin:MasterKey"] = MasterKey,
        });
        _keyA = await CreateKeyAsync("cache-a");
        _keyB = await CreateKeyAsync("cache-b");
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private string Config(string ttl, string gptTargets = "[gpt]") => $$"""
        providers:
          - { name: openai, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
          - { name: anthropic, kind: anthropic, baseUrl: "{{_upstream.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
        deployments:
          - { name: gpt, provider: openai, model: gpt-4o, pricing: { input: 2.5, output: 10 } }
          - { name: gpt-other, provider: openai, model: gpt-4o-other }
          - { name: flaky, provider: openai, model: flaky-model }
          - { name: slow, provider: openai, model: slow-model }
          - { name: claude, provider: anthropic, model: claude-sonnet-4-5 }
        routes:
          - { name: cached-gpt, targets: {{gptTargets}}, cache: { ttl: {{ttl}} } }
          - { name: cached-claude, targets: [claude], cache: { ttl: {{ttl}}, scope: global } }
          - { name: cached-flaky, targets: [flaky], cache: { ttl: {{ttl}} } }
          - { name: cached-slow, targets: [slow], cache: { ttl: {{ttl}}, scope: global } }
          - { name: plain, targets: [gpt] }
        """;

    private async Task<string> CreateKeyAsync(string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json($$"""{"name":"{{name}}"}""") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _gateway.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
    }

    private static string Prompt() => "Tell me something memorable " + Guid.NewGuid().ToString("N");

    private static MessageCreateParams Ask(string route, string prompt) => new()
    {
        Model = route,
        MaxTokens = 300,
        Messages = [new UserMessageParam(prompt)],
    };

    private static ChatCompletionOptions Options() => new() { MaxOutputTokenCount = 300 };

    private async Task<(HttpResponseMessage Response, string Body)> RawChatAsync(string key, string route, string prompt, bool stream = false, Action<HttpRequestHeaders>? headers = null)
    {
        var body = JsonSerializer.Serialize(new { model = route, messages = new[] { new { role = "user", content = prompt } }, max_tokens = 300, stream });
        var response = await _gateway.PostAsync("v1/chat/completions", body, key, headers);
        return (response, await response.Content.ReadAsStringAsync());
    }

    private static string? CacheHeader(HttpResponseMessage response)
        => response.Headers.TryGetValues("x-modelgateway-cache", out var values) ? values.Single() : null;

    private static async Task<string> StreamTextAsync(ChatClient chat, string prompt)
    {
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(prompt)], Options()))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.Stop, finish);
        return text.ToString();
    }

    [Fact]
    public async Task An_answer_filled_through_chat_completions_is_a_hit_for_anthropic_clients_streamed_and_not()
    {
        var prompt = Prompt();
        var chat = _gateway.OpenAI(_keyA).GetChatClient("cached-gpt");
        var anthropic = AnthropicClients.For(_gateway, _keyA);

        ChatCompletion first = await chat.CompleteChatAsync([new UserChatMessage(prompt)], Options());
        var upstreamCalls = _upstream.RequestCount;

        var whole = await anthropic.Messages.Create(Ask("cached-gpt", prompt));
        var streamed = await AnthropicClients.StreamAsync(anthropic, Ask("cached-gpt", prompt));
        var openAIStreamed = await StreamTextAsync(chat, prompt);

        Assert.Equal(Answer, first.Content[0].Text);
        Assert.True(Assert.Single(whole.Content).TryPickText(out var text));
        Assert.Equal(Answer, text!.Text);
        Assert.Equal("end_turn", whole.StopReason?.Raw());
        Assert.Equal(first.Usage.OutputTokenCount, whole.Usage.OutputTokens);
        Assert.Equal(Answer, streamed.Text.ToString());
        Assert.Equal("end_turn", streamed.StopReason);
        Assert.Equal(Answer, openAIStreamed);
        Assert.Equal(upstreamCalls, _upstream.RequestCount);
    }

    [Fact]
    public async Task An_answer_streamed_through_anthropic_messages_is_a_hit_for_chat_completions_clients_streamed_and_not()
    {
        var prompt = Prompt();
        var anthropic = AnthropicClients.For(_gateway, _keyA);
        var chat = _gateway.OpenAI(_keyA).GetChatClient("cached-claude");

        var first = await AnthropicClients.StreamAsync(anthropic, Ask("cached-claude", prompt));
        var upstreamCalls = _upstream.RequestCount;

        ChatCompletion whole = await chat.CompleteChatAsync([new UserChatMessage(prompt)], Options());
        var streamed = await StreamTextAsync(chat, prompt);
        var again = await anthropic.Messages.Create(Ask("cached-claude", prompt));

        Assert.Equal(Answer, first.Text.ToString());
        Assert.Equal(Answer, whole.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, whole.FinishReason);
        Assert.True(whole.Usage.OutputTokenCount > 0);
        Assert.Equal(Answer, streamed);
        Assert.True(Assert.Single(again.Content).TryPickText(out var text));
        Assert.Equal(Answer, text!.Text);
        Assert.Equal(upstreamCalls, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_hit_says_so_with_its_age_and_field_order_and_whitespace_do_not_matter()
    {
        var prompt = Prompt();
        var (stored, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);
        var upstreamCalls = _upstream.RequestCount;

        var reordered = $$"""
            {  "max_tokens": 300,
               "messages": [ { "content": {{JsonSerializer.Serialize(prompt)}}, "role": "user" } ],
               "model": "cached-gpt", "user": "someone-else", "stream_options": null }
            """;
        using var hit = await _gateway.PostAsync("v1/chat/completions", reordered, _keyA);
        var body = JsonDocument.Parse(await hit.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal("stored", CacheHeader(stored));
        Assert.Equal(HttpStatusCode.OK, hit.StatusCode);
        Assert.Equal("hit", CacheHeader(hit));
        Assert.True(hit.Headers.Age is not null);
        Assert.Equal(Answer, body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(upstreamCalls, _upstream.RequestCount);
        stored.Dispose();
    }

    [Fact]
    public async Task Keys_never_share_an_entry_on_a_key_scoped_route()
    {
        var prompt = Prompt();
        var before = _upstream.RequestCount;

        var (a, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);
        var (b, _) = await RawChatAsync(_keyB, "cached-gpt", prompt);
        var (aAgain, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);
        var (bAgain, _) = await RawChatAsync(_keyB, "cached-gpt", prompt);

        Assert.Equal("stored", CacheHeader(a));
        Assert.Equal("stored", CacheHeader(b));
        Assert.Equal("hit", CacheHeader(aAgain));
        Assert.Equal("hit", CacheHeader(bAgain));
        Assert.Equal(before + 2, _upstream.RequestCount);
    }

    [Fact]
    public async Task No_store_neither_reads_nor_writes_and_no_cache_reads_fresh_but_stores()
    {
        var prompt = Prompt();
        var before = _upstream.RequestCount;

        var (first, _) = await RawChatAsync(_keyA, "cached-gpt", prompt, headers: h => h.CacheControl = new CacheControlHeaderValue { NoStore = true });
        var (second, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);
        var (fresh, _) = await RawChatAsync(_keyA, "cached-gpt", prompt, headers: h => h.CacheControl = new CacheControlHeaderValue { NoCache = true });
        var (hit, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);
        var (stillNoStore, _) = await RawChatAsync(_keyA, "cached-gpt", prompt, headers: h => h.CacheControl = new CacheControlHeaderValue { NoStore = true });

        Assert.Equal("bypass", CacheHeader(first));
        Assert.Equal("stored", CacheHeader(second));
        Assert.Equal("stored", CacheHeader(fresh));
        Assert.Equal("hit", CacheHeader(hit));
        Assert.Equal("bypass", CacheHeader(stillNoStore));
        Assert.Equal(before + 4, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_ttl_header_of_zero_keeps_the_answer_out_of_the_cache()
    {
        var prompt = Prompt();
        var before = _upstream.RequestCount;

        var (first, _) = await RawChatAsync(_keyA, "cached-gpt", prompt, headers: h => h.Add("x-modelgateway-cache-ttl", "0"));
        var (second, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);

        Assert.Equal("miss", CacheHeader(first));
        Assert.Equal("stored", CacheHeader(second));
        Assert.Equal(before + 2, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_stream_broken_mid_way_is_never_stored()
    {
        var prompt = Prompt();
        _upstream.Enqueue("flaky-model", new UpstreamBehavior { Content = Answer, ChunkCount = 5, Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 2 });
        var before = _upstream.RequestCount;

        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            var (broken, body) = await RawChatAsync(_keyA, "cached-flaky", prompt, stream: true);
            broken.Dispose();
        });
        var (whole, wholeBody) = await RawChatAsync(_keyA, "cached-flaky", prompt, stream: true);
        var (hit, hitBody) = await RawChatAsync(_keyA, "cached-flaky", prompt, stream: true);

        Assert.Equal("miss", CacheHeader(whole));
        Assert.Contains("data: [DONE]", wholeBody, StringComparison.Ordinal);
        Assert.Equal("hit", CacheHeader(hit));
        Assert.EndsWith("data: [DONE]\n\n", hitBody, StringComparison.Ordinal);
        Assert.Equal(Answer, StreamedText(hitBody));
        Assert.Equal(before + 2, _upstream.RequestCount);
    }

    [Fact]
    public async Task An_answer_cut_short_by_max_tokens_is_not_stored()
    {
        var prompt = Prompt();
        var anthropic = AnthropicClients.For(_gateway, _keyA);
        var before = _upstream.RequestCount;

        // The fake cuts its answer when max_tokens is below its piece count.
        var ask = new MessageCreateParams { Model = "cached-claude", MaxTokens = 2, Messages = [new UserMessageParam(prompt)] };
        var first = await anthropic.Messages.Create(ask);
        var second = await anthropic.Messages.Create(ask);

        Assert.Equal("max_tokens", first.StopReason?.Raw());
        Assert.Equal("max_tokens", second.StopReason?.Raw());
        Assert.Equal(before + 2, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_route_without_a_cache_sends_every_request_upstream_and_says_nothing()
    {
        var prompt = Prompt();
        var before = _upstream.RequestCount;

        var (first, _) = await RawChatAsync(_keyA, "plain", prompt);
        var (second, _) = await RawChatAsync(_keyA, "plain", prompt);

        Assert.Null(CacheHeader(first));
        Assert.Null(CacheHeader(second));
        Assert.Equal(before + 2, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_routing_file_edit_that_changes_a_routes_cache_settings_leaves_its_old_entries_behind()
    {
        var prompt = Prompt();
        var before = _upstream.RequestCount;
        var (filled, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);

        var edited = await _gateway.EditConfigAsync(Config("20m"));
        var (afterEdit, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);
        var (hitAfterEdit, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);
        Assert.True((await _gateway.EditConfigAsync(Config("10m"))).Succeeded);

        Assert.True(edited.Succeeded);
        Assert.Equal("stored", CacheHeader(filled));
        Assert.Equal("stored", CacheHeader(afterEdit));
        Assert.Equal("hit", CacheHeader(hitAfterEdit));
        Assert.Equal(before + 2, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_bad_cache_block_is_refused_with_every_problem_and_its_path()
    {
        var result = await _gateway.EditConfigAsync(Config("10m").Replace("cache: { ttl: 10m, scope: global }", "cache: { ttl: forever, scope: tenants, maxEntryBytes: 1 }", StringComparison.Ordinal));

        Assert.False(result.Succeeded);
        Assert.Contains(result.Errors, e => e.Path == "routes[1].cache.ttl");
        Assert.Contains(result.Errors, e => e.Path == "routes[1].cache.scope");
        Assert.Contains(result.Errors, e => e.Path == "routes[1].cache.maxEntryBytes");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Identical_requests_in_flight_together_share_one_upstream_call_and_all_get_the_whole_answer(bool stream)
    {
        var prompt = Prompt();

        // The upstream answers slowly, so every request arrives while the first one's call is still out.
        _upstream.SetBehaviorForModel("slow-model", new UpstreamBehavior { Content = Answer, ChunkCount = 5, HeaderDelay = TimeSpan.FromSeconds(3) });
        var before = _upstream.RequestCount;
        var keys = new[] { _keyA, _keyB, _keyA, _keyB };

        var answers = await Task.WhenAll(keys.Select(key => RawChatAsync(key, "cached-slow", prompt, stream)));

        Assert.Equal(before + 1, _upstream.RequestCount);
        foreach (var (response, body) in answers)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            if (stream)
            {
                Assert.Equal(Answer, StreamedText(body));
                Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
            }
            else
            {
                Assert.Equal(Answer, JsonDocument.Parse(body).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
            }

            response.Dispose();
        }

        _upstream.ClearBehaviorForModel("slow-model");
    }

    [Fact]
    public async Task An_admin_purge_of_a_route_or_a_key_drops_exactly_those_entries()
    {
        var prompt = Prompt();
        await RawChatAsync(_keyA, "cached-gpt", prompt);
        await RawChatAsync(_keyB, "cached-gpt", prompt);
        var keyAId = await KeyIdAsync(_keyA);
        var before = _upstream.RequestCount;

        using (var purge = await AdminDeleteAsync($"admin/cache?route=cached-gpt&key={keyAId}"))
        {
            Assert.Equal(HttpStatusCode.OK, purge.StatusCode);
        }

        var (a, _) = await RawChatAsync(_keyA, "cached-gpt", prompt);
        var (b, _) = await RawChatAsync(_keyB, "cached-gpt", prompt);
        using (var purgeRoute = await AdminDeleteAsync("admin/cache?route=cached-gpt"))
        {
            Assert.Equal(HttpStatusCode.OK, purgeRoute.StatusCode);
        }

        var (bAfterRoutePurge, _) = await RawChatAsync(_keyB, "cached-gpt", prompt);

        Assert.Equal("stored", CacheHeader(a));
        Assert.Equal("hit", CacheHeader(b));
        Assert.Equal("stored", CacheHeader(bAfterRoutePurge));
        Assert.Equal(before + 2, _upstream.RequestCount);
    }

    private async Task<HttpResponseMessage> AdminDeleteAsync(string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        return await _gateway.Http.SendAsync(request);
    }

    private async Task<string> KeyIdAsync(string secret)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "admin/keys");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _gateway.Http.SendAsync(request);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var name = secret == _keyA ? "cache-a" : "cache-b";
        foreach (var key in body.GetProperty("data").EnumerateArray())
        {
            if (key.GetProperty("name").GetString() == name)
            {
                return key.GetProperty("id").GetString()!;
            }
        }

        throw new InvalidOperationException("no key named " + name);
    }

    private static string StreamedText(string sse)
    {
        var text = new StringBuilder();
        foreach (var line in sse.Split('\n'))
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
            {
                continue;
            }

            var chunk = JsonDocument.Parse(line["data: ".Length..]).RootElement;
            foreach (var choice in chunk.GetProperty("choices").EnumerateArray())
            {
                if (choice.GetProperty("delta").TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
                {
                    text.Append(content.GetString());
                }
            }
        }

        return text.ToString();
    }
}
