using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.FakeUpstream;
using ModelGateway.Providers.Media;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Chat;
using OpenAI.Embeddings;

namespace ModelGateway.Tests.Providers;

/// <summary>
/// An unmodified OpenAI SDK, through the gateway, gets everything from a route served by the Gemini API:
/// the gateway translates requests, streams, usage, embeddings and Google's errors both ways.
/// </summary>
public sealed class GeminiProviderTests : IAsyncLifetime
{
    private const string MasterKey = "mk-gemini-tests-0123456789";
    private const string WrongKey = "AIzaSyWRONGkey-0123456789abcdefghijklm";
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: gemini, kind: gemini, baseUrl: "{{_upstream.GeminiBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: gemini-misconfigured, kind: gemini, baseUrl: "{{_upstream.GeminiBaseUrl}}", apiKey: "{{WrongKey}}" }
            deployments:
              - name: flash
                provider: gemini
                model: gemini-2.5-flash
                contextWindow: 1048576
                maxOutputTokens: 65536
                pricing: { input: 1.25, output: 10, cacheRead: 0.3125 }
              - name: flash-errors
                provider: gemini
                model: gemini-errors
                circuitBreaker: { consecutiveFailures: 0, minimumThroughput: 1000 }
              - name: flash-limited
                provider: gemini
                model: gemini-limited
                circuitBreaker: { consecutiveFailures: 0, minimumThroughput: 1000 }
              - name: flash-wrong-key
                provider: gemini-misconfigured
                model: gemini-2.5-flash
                circuitBreaker: { consecutiveFailures: 0, minimumThroughput: 1000 }
              - { name: embedder, provider: gemini, model: gemini-embedding-001, capabilities: [embeddings] }
            routes:
              - { name: gemini, targets: [flash] }
              - { name: gemini-errors, targets: [flash-errors], resilience: { maxAttempts: 1 } }
              - { name: gemini-limited, targets: [flash-limited], resilience: { maxAttempts: 1 } }
              - { name: gemini-wrong-key, targets: [flash-wrong-key], resilience: { maxAttempts: 1 } }
              - { name: gemini-embed, targets: [embedder] }
            """, new Dictionary<string, string?> { ["Admin:MasterKey"] = MasterKey });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private ChatClient Chat(string route = "gemini") => _gateway.OpenAI().GetChatClient(route);

    [Fact]
    public async Task Plain_and_streamed_chat_carry_the_same_text()
    {
        const string Answer = "Gemini says hello, one piece at a time.";
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
        Assert.Equal(["/v1beta/models/gemini-2.5-flash:generateContent", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"], _upstream.Requests.Select(r => r.Path));
        Assert.Equal("?alt=sse", _upstream.Requests[1].QueryString);
    }

    [Fact]
    public async Task The_request_reaches_gemini_in_its_own_wire_with_the_gateway_key()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ok" };
        var options = new ChatCompletionOptions { Temperature = 1.6f, TopP = 0.9f, MaxOutputTokenCount = 300, StopSequences = { "END" } };

        await Chat().CompleteChatAsync([new SystemChatMessage("You are terse."), new UserChatMessage("Hi"), new AssistantChatMessage("Hello."), new UserChatMessage("Again")], options);

        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal(TestConfigs.ProviderKey, seen.Headers["x-goog-api-key"]);
        Assert.False(seen.Headers.ContainsKey("authorization"));
        var body = seen.Json!;
        Assert.Null(body["model"]);
        Assert.Equal("You are terse.", body["systemInstruction"]!["parts"]![0]!["text"]!.GetValue<string>());
        var contents = body["contents"]!.AsArray();
        Assert.Equal(["user", "model", "user"], contents.Select(c => c!["role"]!.GetValue<string>()));
        Assert.Equal("Hello.", contents[1]!["parts"]![0]!["text"]!.GetValue<string>());
        var config = body["generationConfig"]!;
        Assert.Equal(1.6, config["temperature"]!.GetValue<double>(), 3);
        Assert.Equal(0.9, config["topP"]!.GetValue<double>(), 3);
        Assert.Equal(300, config["maxOutputTokens"]!.GetValue<int>());
        Assert.Equal(["END"], config["stopSequences"]!.AsArray().Select(s => s!.GetValue<string>()));
    }

    [Fact]
    public async Task A_streamed_tool_call_arrives_whole_with_an_id_and_the_result_goes_back_under_the_function_name()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior
        {
            ToolCalls = [new("get_weather", """{"location":"Paris","unit":"celsius"}"""), new("get_time", """{"timezone":"Europe/Paris"}""")],
        };
        var weather = ChatTool.CreateFunctionTool("get_weather", "Weather now", BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string"}},"additionalProperties":false}"""));
        var time = ChatTool.CreateFunctionTool("get_time", "Time now", BinaryData.FromString("""{"type":"object","properties":{"timezone":{"type":"string"}}}"""));
        var options = new ChatCompletionOptions { Tools = { weather, time }, ToolChoice = ChatToolChoice.CreateRequiredChoice() };
        List<ChatMessage> conversation = [new UserChatMessage("Weather and time in Paris?")];

        var (ids, names, arguments, finish) = await StreamToolCallsAsync(Chat(), conversation, options);

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal(["get_weather", "get_time"], names);
        Assert.Equal("Paris", JsonDocument.Parse(arguments[0]).RootElement.GetProperty("location").GetString());
        Assert.Equal("Europe/Paris", JsonDocument.Parse(arguments[1]).RootElement.GetProperty("timezone").GetString());
        Assert.Equal(2, ids.Distinct().Count());
        Assert.All(ids, id => Assert.StartsWith("call_", id, StringComparison.Ordinal));
        var first = Assert.Single(_upstream.Requests).Json!;
        var declarations = first["tools"]![0]!["functionDeclarations"]!.AsArray();
        Assert.Equal(["get_weather", "get_time"], declarations.Select(d => d!["name"]!.GetValue<string>()));
        Assert.False(declarations[0]!["parametersJsonSchema"]!["additionalProperties"]!.GetValue<bool>());
        Assert.Equal("ANY", first["toolConfig"]!["functionCallingConfig"]!["mode"]!.GetValue<string>());

        // The next turn: the calls, then their results (out of order); Gemini matches results by function name.
        conversation.Add(new AssistantChatMessage([
            ChatToolCall.CreateFunctionToolCall(ids[0], names[0], BinaryData.FromString(arguments[0])),
            ChatToolCall.CreateFunctionToolCall(ids[1], names[1], BinaryData.FromString(arguments[1])),
        ]));
        conversation.Add(new ToolChatMessage(ids[1], "14:05"));
        conversation.Add(new ToolChatMessage(ids[0], """{"temperature":18,"sky":"sunny"}"""));
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "It is 18 degrees at 14:05." };
        _upstream.ClearRecorded();

        ChatCompletion answer = await Chat().CompleteChatAsync(conversation, new ChatCompletionOptions { Tools = { weather, time } });

        Assert.Equal("It is 18 degrees at 14:05.", answer.Content[0].Text);
        var contents = Assert.Single(_upstream.Requests).Json!["contents"]!.AsArray();
        Assert.Equal(["user", "model", "user"], contents.Select(c => c!["role"]!.GetValue<string>()));
        var calls = contents[1]!["parts"]!.AsArray();
        Assert.Equal(["get_weather", "get_time"], calls.Select(p => p!["functionCall"]!["name"]!.GetValue<string>()));
        Assert.Equal("Paris", calls[0]!["functionCall"]!["args"]!["location"]!.GetValue<string>());

        // Gemini 2.5 has no thought signature to check: the gateway adds none.
        Assert.All(calls, p => Assert.Null(p!["thoughtSignature"]));
        var results = contents[2]!["parts"]!.AsArray();
        Assert.Equal(["get_time", "get_weather"], results.Select(p => p!["functionResponse"]!["name"]!.GetValue<string>()));
        Assert.Equal("14:05", results[0]!["functionResponse"]!["response"]!["output"]!.GetValue<string>());
        Assert.Equal(18, results[1]!["functionResponse"]!["response"]!["temperature"]!.GetValue<int>());
    }

    [Fact]
    public async Task Inline_images_go_up_as_inline_data_and_an_image_url_is_a_clear_400_that_reaches_no_upstream()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "A red dot." };
        var png = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==");

        ChatCompletion inline = await Chat().CompleteChatAsync([new UserChatMessage(
            ChatMessageContentPart.CreateTextPart("What is this?"),
            ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(png), "image/png"))]);
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => Chat().CompleteChatAsync([new UserChatMessage(
            ChatMessageContentPart.CreateTextPart("And this?"),
            ChatMessageContentPart.CreateImagePart(new Uri("https://example.com/cat.jpg")))]));

        Assert.Equal("A red dot.", inline.Content[0].Text);
        var parts = Assert.Single(_upstream.Requests).Json!["contents"]![0]!["parts"]!.AsArray();
        Assert.Equal("What is this?", parts[0]!["text"]!.GetValue<string>());
        Assert.Equal("image/png", parts[1]!["inlineData"]!["mimeType"]!.GetValue<string>());
        Assert.Equal(Convert.ToBase64String(png), parts[1]!["inlineData"]!["data"]!.GetValue<string>());
        Assert.Equal(400, refused.Status);
        Assert.Contains("inline", refused.Message, StringComparison.Ordinal);
        Assert.Contains("image_url_not_supported", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Where_an_admin_allows_fetching_an_image_url_goes_up_as_the_fetched_bytes()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "A cat." };
        var fetcher = new CannedMediaFetcher("image/jpeg", [0xFF, 0xD8, 0xFF, 0xE0]);
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: gemini, kind: gemini, baseUrl: "{{_upstream.GeminiBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: flash, provider: gemini, model: gemini-2.5-flash, mediaFetch: { allowedHosts: ["images.example.com"] } }
            routes:
              - { name: gemini, targets: [flash] }
            """, configure: builder => builder.Services.AddSingleton<IMediaFetcher>(fetcher));

        ChatCompletion answer = await gateway.OpenAI().GetChatClient("gemini").CompleteChatAsync([new UserChatMessage(
            ChatMessageContentPart.CreateTextPart("What is this?"),
            ChatMessageContentPart.CreateImagePart(new Uri("https://images.example.com/cat.jpg")))]);

        Assert.Equal("A cat.", answer.Content[0].Text);
        Assert.Equal(["https://images.example.com/cat.jpg"], fetcher.Fetched);
        var inline = Assert.Single(_upstream.Requests).Json!["contents"]![0]!["parts"]![1]!["inlineData"]!;
        Assert.Equal("image/jpeg", inline["mimeType"]!.GetValue<string>());
        Assert.Equal(Convert.ToBase64String([0xFF, 0xD8, 0xFF, 0xE0]), inline["data"]!.GetValue<string>());
    }

    [Fact]
    public async Task Usage_counts_cached_and_thinking_tokens_and_cost_prices_cache_reads()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Cached answer.", PromptTokens = 1000, CachedTokens = 2000, CompletionTokens = 100 };

        ChatCompletion whole = await Chat().CompleteChatAsync([new UserChatMessage("Hi")]);
        ChatTokenUsage? streamedUsage = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
        {
            streamedUsage ??= update.Usage;
        }

        // promptTokenCount includes the cached tokens, as OpenAI's prompt_tokens does.
        Assert.Equal(3000, whole.Usage.InputTokenCount);
        Assert.Equal(2000, whole.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(100, whole.Usage.OutputTokenCount);
        Assert.NotNull(streamedUsage);
        Assert.Equal(3000, streamedUsage.InputTokenCount);
        Assert.Equal(2000, streamedUsage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(100, streamedUsage.OutputTokenCount);

        // 1000 × $1.25 + 2000 × $0.3125 + 100 × $10, per million tokens, for each of the two requests.
        var row = await UsageRowAsync("flash");
        Assert.Equal(2, row.GetProperty("requests").GetInt64());
        Assert.Equal(2 * 0.002875, row.GetProperty("cost_usd").GetDouble(), 9);
        Assert.Equal(4000, row.GetProperty("cached_tokens").GetInt64());
    }

    [Fact]
    public async Task Thinking_comes_back_as_reasoning_and_its_tokens_count_as_output()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "42.", Thinking = "The question asks for the answer; it is 42.", ChunkCount = 2 };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini","reasoning_effort":"low","max_tokens":500,"messages":[{"role":"user","content":"Answer?"}]}""");
        var root = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        using var streamed = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini","reasoning_effort":"low","max_tokens":500,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Answer?"}]}""");
        var chunks = Chunks(await streamed.Content.ReadAsStringAsync()).ToList();

        var message = root.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("42.", message.GetProperty("content").GetString());
        Assert.Equal("The question asks for the answer; it is 42.", message.GetProperty("reasoning_content").GetString());
        var thinking = _upstream.Requests[0].Json!["generationConfig"]!["thinkingConfig"]!;
        Assert.True(thinking["includeThoughts"]!.GetValue<bool>());
        Assert.Equal(1024, thinking["thinkingBudget"]!.GetValue<int>());
        Assert.Equal(500 + 1024, _upstream.Requests[0].Json!["generationConfig"]!["maxOutputTokens"]!.GetValue<int>());

        // candidatesTokenCount leaves the thinking out; OpenAI's completion_tokens count it.
        var thoughts = root.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.True(thoughts > 1);
        var deltas = chunks.Select(c => c.GetProperty("choices")).Where(c => c.GetArrayLength() > 0).Select(c => c[0].GetProperty("delta")).ToList();
        Assert.Equal("The question asks for the answer; it is 42.", string.Concat(deltas.Where(d => d.TryGetProperty("reasoning_content", out _)).Select(d => d.GetProperty("reasoning_content").GetString())));
        Assert.Equal("42.", string.Concat(deltas.Where(d => d.TryGetProperty("content", out _)).Select(d => d.GetProperty("content").GetString())));
        Assert.Equal(thoughts, chunks.Last(c => c.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object).GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Json_schema_output_asks_gemini_for_json_with_the_schema_as_given()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = """{"city":"Paris","population":2100000}""" };
        var options = new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("city", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"},"population":{"type":"integer"}},"required":["city"],"additionalProperties":false}""")),
        };

        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Biggest French city?")], options);

        Assert.Equal("Paris", JsonDocument.Parse(completion.Content[0].Text).RootElement.GetProperty("city").GetString());
        var config = Assert.Single(_upstream.Requests).Json!["generationConfig"]!;
        Assert.Equal("application/json", config["responseMimeType"]!.GetValue<string>());
        Assert.Equal("city", config["responseJsonSchema"]!["required"]![0]!.GetValue<string>());
        Assert.False(config["responseJsonSchema"]!["additionalProperties"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData("SAFETY", "content_filter")]
    [InlineData("RECITATION", "content_filter")]
    [InlineData("BLOCKLIST", "content_filter")]
    [InlineData("PROHIBITED_CONTENT", "content_filter")]
    [InlineData("SPII", "content_filter")]
    [InlineData("MAX_TOKENS", "length")]
    [InlineData("STOP", "stop")]
    public async Task Finish_reasons_map_to_openai_finish_reasons(string geminiReason, string openAIReason)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Partial answer", StopReason = geminiReason };

        using var whole = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini","messages":[{"role":"user","content":"Hi"}]}""");
        using var streamed = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini","stream":true,"messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(openAIReason, JsonDocument.Parse(await whole.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var finish = Chunks(await streamed.Content.ReadAsStringAsync()).Select(c => c.GetProperty("choices")).Where(c => c.GetArrayLength() > 0)
            .Select(c => c[0].GetProperty("finish_reason")).Single(f => f.ValueKind == JsonValueKind.String);
        Assert.Equal(openAIReason, finish.GetString());
    }

    [Fact]
    public async Task A_refused_answer_finishes_with_content_filter()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Refusal = "I cannot help with that." };

        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Something dangerous")]);

        Assert.Equal(ChatFinishReason.ContentFilter, completion.FinishReason);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_prompt_blocked_by_safety_is_a_400_content_filter_error_that_is_not_retried(bool stream)
    {
        _upstream.Enqueue("gemini-errors", new UpstreamBehavior { PromptBlockReason = "PROHIBITED_CONTENT" });

        using var response = await _gateway.PostAsync("v1/chat/completions", $$"""{"model":"gemini-errors","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"Something forbidden"}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await ErrorAsync(response);
        Assert.Equal("content_filter", error.GetProperty("code").GetString());
        Assert.Contains("PROHIBITED_CONTENT", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Single(_upstream.Requests);
    }

    [Fact]
    public async Task Google_errors_reach_the_client_in_openai_shape_each_as_its_class()
    {
        _upstream.Enqueue("gemini-errors", new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded" });
        using var tooLong = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini-errors","messages":[{"role":"user","content":"Hi"}]}""");
        _upstream.Enqueue("gemini-errors", new UpstreamBehavior { StatusCode = 400, ErrorMessage = "* GenerateContentRequest.generation_config.temperature: must be between 0 and 2" });
        using var invalid = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini-errors","messages":[{"role":"user","content":"Hi"}]}""");
        _upstream.Enqueue("gemini-errors", new UpstreamBehavior { StatusCode = 404 });
        using var notFound = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini-errors","messages":[{"role":"user","content":"Hi"}]}""");
        _upstream.Enqueue("gemini-errors", new UpstreamBehavior { StatusCode = 503 });
        using var unavailable = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini-errors","messages":[{"role":"user","content":"Hi"}]}""");
        _upstream.Enqueue("gemini-errors", new UpstreamBehavior { StatusCode = 500 });
        using var internalError = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini-errors","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        Assert.Equal("context_length_exceeded", (await ErrorAsync(tooLong)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains("must be between 0 and 2", (await ErrorAsync(invalid)).GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadGateway, notFound.StatusCode);
        Assert.Equal("upstream_misconfigured", (await ErrorAsync(notFound)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, unavailable.StatusCode);
        Assert.Equal(HttpStatusCode.BadGateway, internalError.StatusCode);
        Assert.Equal(5, _upstream.Requests.Count);
    }

    [Fact]
    public async Task Resource_exhausted_is_a_429_that_waits_as_long_as_retry_info_says()
    {
        _upstream.Enqueue("gemini-limited", new UpstreamBehavior { StatusCode = 429, RetryAfter = TimeSpan.FromSeconds(7) });

        using var limited = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini-limited","messages":[{"role":"user","content":"Hi"}]}""");
        using var cooling = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini-limited","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal("rate_limit_exceeded", (await ErrorAsync(limited)).GetProperty("code").GetString());
        Assert.Equal("7", limited.Headers.GetValues("retry-after").Single());

        // The deployment is left alone for the wait Google asked for: the next request does not reach it.
        Assert.Equal(HttpStatusCode.TooManyRequests, cooling.StatusCode);
        Assert.Single(_upstream.Requests);
    }

    [Fact]
    public async Task A_wrong_api_key_is_a_502_misconfiguration_and_the_key_never_leaks()
    {
        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"gemini-wrong-key","messages":[{"role":"user","content":"Hi"}]}""");
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_misconfigured", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(WrongKey, Assert.Single(_upstream.Requests).Headers["x-goog-api-key"]);
        Assert.DoesNotContain(WrongKey, body, StringComparison.Ordinal);
        Assert.DoesNotContain(WrongKey, _gateway.Logs.All, StringComparison.Ordinal);
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
    public async Task Embeddings_go_through_batch_embed_contents_with_the_requested_dimensions()
    {
        var client = _gateway.OpenAI().GetEmbeddingClient("gemini-embed");

        OpenAIEmbeddingCollection embeddings = await client.GenerateEmbeddingsAsync(["first text", "second text"], new EmbeddingGenerationOptions { Dimensions = 16 });
        using var floats = await _gateway.PostAsync("v1/embeddings", """{"model":"gemini-embed","input":"first text","dimensions":16,"encoding_format":"float"}""");
        var root = JsonDocument.Parse(await floats.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(2, embeddings.Count);
        Assert.All(embeddings, e => Assert.Equal(16, e.ToFloats().Length));
        Assert.NotEqual(embeddings[0].ToFloats().ToArray(), embeddings[1].ToFloats().ToArray());
        Assert.True(embeddings.Usage.InputTokenCount > 0);

        // The base64 the SDK decoded and the floats asked for as JSON are the same vector.
        var asFloats = root.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(embeddings[0].ToFloats().ToArray(), asFloats);
        Assert.Equal("list", root.GetProperty("object").GetString());
        Assert.Equal("gemini-embedding-001", root.GetProperty("model").GetString());
        Assert.True(root.GetProperty("usage").GetProperty("prompt_tokens").GetInt32() > 0);

        var seen = _upstream.Requests[0];
        Assert.Equal("/v1beta/models/gemini-embedding-001:batchEmbedContents", seen.Path);
        var requests = seen.Json!["requests"]!.AsArray();
        Assert.Equal(["first text", "second text"], requests.Select(r => r!["content"]!["parts"]![0]!["text"]!.GetValue<string>()));
        Assert.All(requests, r => Assert.Equal("models/gemini-embedding-001", r!["model"]!.GetValue<string>()));
        Assert.All(requests, r => Assert.Equal(16, r!["outputDimensionality"]!.GetValue<int>()));
    }

    [Fact]
    public async Task Embeddings_of_token_ids_are_a_clear_400_for_a_text_only_provider()
    {
        using var response = await _gateway.PostAsync("v1/embeddings", """{"model":"gemini-embed","input":[[1,2,3]]}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("token ids", (await ErrorAsync(response)).GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Empty(_upstream.Requests);
    }

    internal static async Task<(List<string> Ids, List<string> Names, List<string> Arguments, ChatFinishReason? Finish)> StreamToolCallsAsync(
        ChatClient chat, List<ChatMessage> conversation, ChatCompletionOptions options)
    {
        var ids = new SortedDictionary<int, string>();
        var names = new SortedDictionary<int, string>();
        var arguments = new SortedDictionary<int, StringBuilder>();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(conversation, options))
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

        return ([.. ids.Values], [.. names.Values], [.. arguments.Values.Select(a => a.ToString())], finish);
    }

    internal static async Task<JsonElement> ErrorAsync(HttpResponseMessage response)
        => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

    internal static IEnumerable<JsonElement> Chunks(string events)
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
