using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Chat;

namespace ModelGateway.Tests.Providers;

/// <summary>
/// An unmodified OpenAI SDK, through the gateway, gets everything from a route served by Anthropic's
/// Messages API: the gateway translates the request, the stream and the errors both ways.
/// </summary>
public sealed class AnthropicProviderTests : IAsyncLifetime
{
    private const string MasterKey = "mk-anthropic-tests-0123456789";
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: anthropic, kind: anthropic, baseUrl: "{{_upstream.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: anthropic-new, kind: anthropic, baseUrl: "{{_upstream.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}", apiVersion: "2026-10-21", betas: [prompt-caching-2024-07-31] }
            deployments:
              - name: sonnet
                provider: anthropic
                model: claude-sonnet-4-5
                contextWindow: 200000
                maxOutputTokens: 64000
                defaultMaxTokens: 1024
                pricing: { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 }
              - { name: sonnet-new, provider: anthropic-new, model: claude-sonnet-4-5-new }
              - { name: sonnet-catalog, provider: anthropic, model: claude-sonnet-4-5-20250929 }
            routes:
              - { name: claude, targets: [sonnet] }
              - { name: claude-catalog, targets: [sonnet-catalog] }
              - { name: claude-new, targets: [sonnet-new] }
            """, new Dictionary<string, string?> { ["Admin:MasterKey"] = MasterKey });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private ChatClient Chat(string route = "claude") => _gateway.OpenAI().GetChatClient(route);

    [Fact]
    public async Task Plain_and_streamed_chat_carry_the_same_text()
    {
        const string Answer = "Claude says hello, one piece at a time.";
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5 };

        ChatCompletion whole = await Chat().CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hello")]);
        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hello")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(Answer, whole.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, whole.FinishReason);
        Assert.Equal(Answer, streamed.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
    }

    [Fact]
    public async Task The_request_reaches_anthropic_in_its_own_wire_with_the_gateway_key()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ok" };
        var options = new ChatCompletionOptions { Temperature = 1.6f, TopP = 0.9f, StopSequences = { "END", " " } };

        await Chat().CompleteChatAsync([new SystemChatMessage("You are terse."), new UserChatMessage("Hi")], options);

        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal("/v1/messages", seen.Path);
        Assert.Equal(TestConfigs.ProviderKey, seen.Headers["x-api-key"]);
        Assert.Equal("2023-06-01", seen.Headers["anthropic-version"]);
        Assert.False(seen.Headers.ContainsKey("authorization"));
        var body = seen.Json!;
        Assert.Equal("claude-sonnet-4-5", body["model"]!.GetValue<string>());
        Assert.Equal(1024, body["max_tokens"]!.GetValue<int>());
        Assert.Equal("You are terse.", body["system"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("user", body["messages"]![0]!["role"]!.GetValue<string>());
        Assert.Equal(1.0, body["temperature"]!.GetValue<double>());
        Assert.Equal(["END"], body["stop_sequences"]!.AsArray().Select(s => s!.GetValue<string>()));
    }

    [Fact]
    public async Task A_newer_api_version_gets_a_bearer_key_and_no_sampling_parameters()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ok" };

        ChatCompletion completion = await Chat("claude-new").CompleteChatAsync([new UserChatMessage("Hi")], new ChatCompletionOptions { Temperature = 0.2f, TopP = 0.5f });

        Assert.Equal("ok", completion.Content[0].Text);
        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal("Bearer " + TestConfigs.ProviderKey, seen.Headers["authorization"]);
        Assert.Equal("2026-10-21", seen.Headers["anthropic-version"]);
        Assert.Equal("prompt-caching-2024-07-31", seen.Headers["anthropic-beta"]);
        Assert.Null(seen.Json!["temperature"]);
        Assert.Null(seen.Json!["top_p"]);
    }

    [Fact]
    public async Task Parallel_streamed_tool_calls_assemble_into_arguments_that_parse_and_the_results_go_back()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior
        {
            ToolCalls = [new("get_weather", """{"location":"Paris","unit":"celsius"}"""), new("get_time", """{"timezone":"Europe/Paris"}""")],
        };
        var weather = ChatTool.CreateFunctionTool("get_weather", "Weather now", BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string"}}}"""));
        var time = ChatTool.CreateFunctionTool("get_time", "Time now", BinaryData.FromString("""{"type":"object","properties":{"timezone":{"type":"string"}}}"""));
        var options = new ChatCompletionOptions { Tools = { weather, time } };
        List<ChatMessage> conversation = [new UserChatMessage("Weather and time in Paris?")];

        var ids = new Dictionary<int, string>();
        var names = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync(conversation, options))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                if (call.ToolCallId is { } id)
                {
                    ids[call.Index] = id;
                }

                if (call.FunctionName is { } name)
                {
                    names[call.Index] = name;
                }

                var builder = arguments.TryGetValue(call.Index, out var existing) ? existing : arguments[call.Index] = new StringBuilder();
                builder.Append(call.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal(["get_weather", "get_time"], names.OrderBy(n => n.Key).Select(n => n.Value));
        Assert.Equal("Paris", JsonDocument.Parse(arguments[0].ToString()).RootElement.GetProperty("location").GetString());
        Assert.Equal("Europe/Paris", JsonDocument.Parse(arguments[1].ToString()).RootElement.GetProperty("timezone").GetString());
        Assert.All(ids.Values, id => Assert.StartsWith("toolu_", id, StringComparison.Ordinal));

        // The next turn carries the calls and their results; Anthropic wants the results in one user turn.
        conversation.Add(new AssistantChatMessage([
            ChatToolCall.CreateFunctionToolCall(ids[0], names[0], BinaryData.FromString(arguments[0].ToString())),
            ChatToolCall.CreateFunctionToolCall(ids[1], names[1], BinaryData.FromString(arguments[1].ToString())),
        ]));
        conversation.Add(new ToolChatMessage(ids[1], "14:05"));
        conversation.Add(new ToolChatMessage(ids[0], "18 degrees and sunny"));
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "It is 18 degrees at 14:05." };
        _upstream.ClearRecorded();

        ChatCompletion answer = await Chat().CompleteChatAsync(conversation, options);

        Assert.Equal("It is 18 degrees at 14:05.", answer.Content[0].Text);
        var messages = Assert.Single(_upstream.Requests).Json!["messages"]!.AsArray();
        Assert.Equal(["user", "assistant", "user"], messages.Select(m => m!["role"]!.GetValue<string>()));
        var uses = messages[1]!["content"]!.AsArray();
        Assert.Equal(["tool_use", "tool_use"], uses.Select(b => b!["type"]!.GetValue<string>()));
        Assert.Equal("Paris", uses[0]!["input"]!["location"]!.GetValue<string>());
        var results = messages[2]!["content"]!.AsArray();
        Assert.Equal([ids[1], ids[0]], results.Select(b => b!["tool_use_id"]!.GetValue<string>()));
        Assert.All(results, b => Assert.Equal("tool_result", b!["type"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Images_go_up_as_base64_or_url_sources()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "A red dot." };
        var png = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==");

        await Chat().CompleteChatAsync([new UserChatMessage(
            ChatMessageContentPart.CreateTextPart("What are these?"),
            ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(png), "image/png"),
            ChatMessageContentPart.CreateImagePart(new Uri("https://example.com/cat.jpg")))]);

        var content = Assert.Single(_upstream.Requests).Json!["messages"]![0]!["content"]!.AsArray();
        Assert.Equal(["text", "image", "image"], content.Select(b => b!["type"]!.GetValue<string>()));
        Assert.Equal("base64", content[1]!["source"]!["type"]!.GetValue<string>());
        Assert.Equal("image/png", content[1]!["source"]!["media_type"]!.GetValue<string>());
        Assert.Equal(Convert.ToBase64String(png), content[1]!["source"]!["data"]!.GetValue<string>());
        Assert.Equal("url", content[2]!["source"]!["type"]!.GetValue<string>());
        Assert.Equal("https://example.com/cat.jpg", content[2]!["source"]!["url"]!.GetValue<string>());
    }

    [Fact]
    public async Task Usage_counts_cached_tokens_in_the_prompt_and_cost_prices_cache_reads_and_writes()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Cached answer.", PromptTokens = 1000, CachedTokens = 2000, CacheWriteTokens = 500, CompletionTokens = 100 };

        ChatCompletion whole = await Chat().CompleteChatAsync([new UserChatMessage("Hi")]);
        ChatTokenUsage? streamedUsage = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
        {
            streamedUsage ??= update.Usage;
        }

        // OpenAI's prompt_tokens include cache reads and writes; cached_tokens are the reads.
        Assert.Equal(3500, whole.Usage.InputTokenCount);
        Assert.Equal(2000, whole.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(100, whole.Usage.OutputTokenCount);
        Assert.NotNull(streamedUsage);
        Assert.Equal(3500, streamedUsage.InputTokenCount);
        Assert.Equal(2000, streamedUsage.InputTokenDetails.CachedTokenCount);

        // 1000 × $3 + 2000 × $0.30 + 500 × $3.75 + 100 × $15, per million tokens, for each of the two requests.
        var row = await UsageRowAsync("sonnet");
        Assert.Equal(2, row.GetProperty("requests").GetInt64());
        Assert.Equal(2 * 0.006975, row.GetProperty("cost_usd").GetDouble(), 9);
        Assert.Equal(4000, row.GetProperty("cached_tokens").GetInt64());
    }

    [Fact]
    public async Task Cost_follows_the_model_catalog_for_cache_reads_and_writes()
    {
        Assert.True(ModelGateway.Catalog.KnownModels.Shipped.TryFind("claude-sonnet-4-5", out var known));
        var price = known.Pricing!;
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Cached.", PromptTokens = 1000, CachedTokens = 40000, CacheWriteTokens = 2000, CompletionTokens = 300 };

        await Chat("claude-catalog").CompleteChatAsync([new UserChatMessage("Hi")]);

        // Per million tokens: 1,000 uncached input, 40,000 read from the cache, 2,000 written to it, 300 output.
        var expected = ((1000 * price.Input) + (40000 * price.CacheRead!.Value) + (2000 * price.CacheWrite!.Value) + (300 * price.Output!.Value)) / 1_000_000m;
        var row = await UsageRowAsync("sonnet-catalog");
        Assert.Equal((double)expected, row.GetProperty("cost_usd").GetDouble(), 9);
        Assert.True(price.CacheRead < price.Input, "a cache read must cost less than plain input");
    }

    [Fact]
    public async Task A_reply_cut_at_max_tokens_finishes_with_length()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "one two three four five six seven eight nine ten", ChunkCount = 10 };

        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Count")], new ChatCompletionOptions { MaxOutputTokenCount = 3 });

        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(3, Assert.Single(_upstream.Requests).Json!["max_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Thinking_comes_back_as_reasoning_content_never_as_content()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "42.", Thinking = "The question asks for the answer; it is 42." };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"claude","reasoning_effort":"low","max_tokens":500,"messages":[{"role":"user","content":"Answer?"}]}""");
        var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("message");
        using var streamed = await _gateway.PostAsync("v1/chat/completions", """{"model":"claude","reasoning_effort":"low","max_tokens":500,"stream":true,"messages":[{"role":"user","content":"Answer?"}]}""");
        var events = await streamed.Content.ReadAsStringAsync();

        Assert.Equal("42.", message.GetProperty("content").GetString());
        Assert.Equal("The question asks for the answer; it is 42.", message.GetProperty("reasoning_content").GetString());
        var thinking = _upstream.Requests[0].Json!["thinking"]!;
        Assert.Equal("enabled", thinking["type"]!.GetValue<string>());
        Assert.Equal(2048, thinking["budget_tokens"]!.GetValue<int>());
        Assert.Equal(500 + 2048, _upstream.Requests[0].Json!["max_tokens"]!.GetValue<int>());
        var deltas = Chunks(events).Select(c => c.GetProperty("choices")).Where(c => c.GetArrayLength() > 0).Select(c => c[0].GetProperty("delta")).ToList();
        Assert.Equal("The question asks for the answer; it is 42.", string.Concat(deltas.Where(d => d.TryGetProperty("reasoning_content", out _)).Select(d => d.GetProperty("reasoning_content").GetString())));
        Assert.Equal("42.", string.Concat(deltas.Where(d => d.TryGetProperty("content", out _)).Select(d => d.GetProperty("content").GetString())));
    }

    [Fact]
    public async Task Json_schema_output_comes_back_as_the_message_text()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { ToolCalls = [new("json_response", """{"city":"Paris","population":2100000}""")] };
        var options = new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("city", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"},"population":{"type":"integer"}}}""")),
        };

        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Biggest French city?")], options);

        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal("Paris", JsonDocument.Parse(completion.Content[0].Text).RootElement.GetProperty("city").GetString());
        var body = Assert.Single(_upstream.Requests).Json!;
        Assert.Equal("tool", body["tool_choice"]!["type"]!.GetValue<string>());
        Assert.Equal("json_response", body["tool_choice"]!["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task Anthropic_errors_reach_the_client_in_openai_shape()
    {
        _upstream.Enqueue(new UpstreamBehavior { StatusCode = 400, ErrorMessage = "messages: roles must alternate" });
        var invalid = await Assert.ThrowsAsync<ClientResultException>(() => Chat().CompleteChatAsync([new UserChatMessage("Hi")]));
        _upstream.Enqueue(new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded" });
        using var tooLong = await _gateway.PostAsync("v1/chat/completions", """{"model":"claude","messages":[{"role":"user","content":"Hi"}]}""");
        _upstream.Enqueue(new UpstreamBehavior { StatusCode = 401 });
        using var wrongKey = await _gateway.PostAsync("v1/chat/completions", """{"model":"claude","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(400, invalid.Status);
        Assert.Contains("roles must alternate", invalid.Message, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        Assert.Equal("context_length_exceeded", (await ErrorAsync(tooLong)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.BadGateway, wrongKey.StatusCode);
        Assert.Equal("upstream_misconfigured", (await ErrorAsync(wrongKey)).GetProperty("code").GetString());
        Assert.DoesNotContain(TestConfigs.ProviderKey, _gateway.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_error_event_mid_stream_breaks_the_stream_visibly()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "This answer will not finish.", ChunkCount = 6, ChunkDelay = TimeSpan.FromMilliseconds(30), Fault = UpstreamFault.ErrorEvent, FaultAfterChunks = 2 };

        var text = new StringBuilder();
        var broken = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }
            }
        });

        Assert.NotEmpty(text.ToString());
        Assert.NotEqual("This answer will not finish.", text.ToString());
        Assert.NotNull(broken);
    }

    [Fact]
    public async Task Embeddings_on_an_anthropic_route_are_a_clear_400()
    {
        using var response = await _gateway.PostAsync("v1/embeddings", """{"model":"claude","input":"hello"}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("unsupported_operation", (await ErrorAsync(response)).GetProperty("code").GetString());
        Assert.Empty(_upstream.Requests);
    }

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response)
        => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

    private static IEnumerable<JsonElement> Chunks(string events)
        => events.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Where(e => e.StartsWith("data: {", StringComparison.Ordinal))
            .Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement);

    private async Task<JsonElement> UsageRowAsync(string deployment)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "admin/usage?group_by=deployment");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _gateway.Http.SendAsync(request);
        var rows = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
        return rows.EnumerateArray().Single(r => r.GetProperty("deployment").GetString() == deployment);
    }
}
