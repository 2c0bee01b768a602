using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Protocols.Anthropic;

/// <summary>
/// The official Anthropic .NET SDK, pointed at the gateway, against routes served by an Anthropic
/// deployment (pass-through), an OpenAI-wire deployment, a scripted OpenAI-compatible server (parallel
/// tool calls, reasoning) and the simulator: every one answers in Anthropic's exact wire.
/// </summary>
public sealed class MessagesApiTests : IAsyncLifetime
{
    private const string Answer = "The quick brown fox jumps over the lazy dog and rests in the sun.";
    private FakeUpstreamServer _upstream = null!;
    private ScriptedOpenAIUpstream _scripted = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 6 };
        _scripted = await ScriptedOpenAIUpstream.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: anthropic, kind: anthropic, baseUrl: "{{_upstream.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}", betas: [gateway-beta-2026-01-01] }
              - { name: openai, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: scripted, kind: openai-compatible, baseUrl: "{{_scripted.BaseUrl}}" }
              - { name: sim, kind: simulated, simulate: { ttft: 1ms, tokensPerSecond: 5000, outputTokens: 12 } }
            deployments:
              - { name: claude, provider: anthropic, model: claude-sonnet-4-5 }
              - { name: gpt, provider: openai, model: gpt-4o, contextWindow: 128000, maxOutputTokens: 16384, capabilities: [chat, tools, vision, json_schema, prefill] }
              - { name: scripted, provider: scripted, model: scripted-model, capabilities: [chat, tools] }
              - { name: sim, provider: sim, model: sim-model, capabilities: [chat, tools] }
              - { name: gpt-b, provider: openai, model: gpt-4o-b, capabilities: [chat, tools, prefill] }
            routes:
              - { name: claude, targets: [claude] }
              - { name: gpt, targets: [gpt] }
              - { name: scripted, targets: [scripted] }
              - { name: sim, targets: [sim] }
              - { name: claude-then-gpt, strategy: priority, targets: [claude, gpt], resilience: { continuation: true } }
              - { name: gpt-then-gpt-b, strategy: priority, targets: [gpt, gpt-b], resilience: { continuation: true } }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _scripted.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static MessageCreateParams Ask(string route, string prompt = "Tell me about the fox", long maxTokens = 1024) => new()
    {
        Model = route,
        MaxTokens = maxTokens,
        Messages = [new UserMessageParam(prompt)],
    };

    [Theory]
    [InlineData("claude")]
    [InlineData("gpt")]
    public async Task Plain_and_streamed_messages_carry_the_same_text_and_usage(string route)
    {
        var client = AnthropicClients.For(_gateway);

        var whole = await client.Messages.Create(Ask(route));
        var streamed = await AnthropicClients.StreamAsync(client, Ask(route));

        Assert.True(Assert.Single(whole.Content).TryPickText(out var text));
        Assert.Equal(Answer, text!.Text);
        Assert.Equal("end_turn", whole.StopReason?.Raw());
        Assert.StartsWith("msg_", whole.ID, StringComparison.Ordinal);
        Assert.True(whole.Usage.InputTokens > 0);
        Assert.Equal(6, whole.Usage.OutputTokens);
        Assert.Equal(Answer, streamed.Text.ToString());
        Assert.Equal("end_turn", streamed.StopReason);
        Assert.True(streamed.StartInputTokens > 0);
        Assert.Equal(6, streamed.FinalOutputTokens);
    }

    [Fact]
    public async Task The_simulator_answers_anthropic_clients_too()
    {
        var client = AnthropicClients.For(_gateway);

        var whole = await client.Messages.Create(Ask("sim"));
        var streamed = await AnthropicClients.StreamAsync(client, Ask("sim"));

        Assert.True(Assert.Single(whole.Content).TryPickText(out var text));
        Assert.NotEmpty(text!.Text);
        Assert.NotEmpty(streamed.Text.ToString());
        Assert.Equal("end_turn", streamed.StopReason);
        Assert.True(streamed.FinalOutputTokens > 0);
    }

    [Fact]
    public async Task A_pass_through_request_reaches_anthropic_byte_for_byte_except_the_model_with_the_clients_version_and_betas()
    {
        const string Body = """{"model":"claude","max_tokens":300,"system":[{"type":"text","text":"Be terse.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"Hi"}],"context_management":{"edits":[]},"stream":true}""";

        var events = await AnthropicClients.RawEventsAsync(_gateway, Body, headers =>
        {
            headers.Add("anthropic-version", "2023-06-01");
            headers.Add("anthropic-beta", "context-management-2025-06-27");
        });

        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal(Body.Replace("\"model\":\"claude\"", "\"model\":\"claude-sonnet-4-5\"", StringComparison.Ordinal), seen.BodyText);
        Assert.Equal("2023-06-01", seen.Headers["anthropic-version"]);
        Assert.Equal("context-management-2025-06-27,gateway-beta-2026-01-01", seen.Headers["anthropic-beta"]);
        Assert.Equal(TestConfigs.ProviderKey, seen.Headers["x-api-key"]);

        // The events are the upstream's own, relayed as they came.
        Assert.Equal("message_start", events[0].Name);
        Assert.Equal("message_stop", events[^1].Name);
        Assert.Equal(Answer, string.Concat(events.Where(e => e.Name == "content_block_delta").Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("delta").GetProperty("text").GetString())));
        Assert.Contains("claude-sonnet-4-5", events[0].Data, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_translated_stream_is_anthropics_exact_event_sequence()
    {
        var events = await AnthropicClients.RawEventsAsync(_gateway, """{"model":"gpt","max_tokens":300,"messages":[{"role":"user","content":"Hi"}],"stream":true}""");

        var names = events.Select(e => e.Name).ToList();
        Assert.Equal(["message_start", "content_block_start", "ping"], names.Take(3));
        Assert.Equal(["content_block_stop", "message_delta", "message_stop"], names.TakeLast(3));
        Assert.All(names.Skip(3).SkipLast(3), n => Assert.Equal("content_block_delta", n));
        Assert.All(events, e => Assert.Equal(e.Name, JsonDocument.Parse(e.Data).RootElement.GetProperty("type").GetString()));
        var start = JsonDocument.Parse(events[0].Data).RootElement.GetProperty("message");
        Assert.Equal("gpt-4o", start.GetProperty("model").GetString());
        Assert.True(start.GetProperty("usage").GetProperty("input_tokens").GetInt64() > 0);
        var delta = JsonDocument.Parse(events[^2].Data).RootElement;
        Assert.Equal("end_turn", delta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(6, delta.GetProperty("usage").GetProperty("output_tokens").GetInt64());

        // The OpenAI deployment got chat completions, with the upstream asked for usage.
        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal("/v1/chat/completions", seen.Path);
        Assert.True(seen.Json!["stream_options"]!["include_usage"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Parallel_tool_calls_stream_as_tool_use_blocks_and_results_go_back_in_call_order()
    {
        _scripted.Enqueue(ScriptedOpenAIUpstream.ParallelToolCalls(("call_w", "get_weather", """{"location":"Paris"}"""), ("call_t", "get_time", """{"timezone":"Europe/Paris"}""")));
        var client = AnthropicClients.For(_gateway);
        var ask = Ask("scripted", "Weather and time in Paris?") with { Tools = [AnthropicClients.Tool("get_weather", "location"), AnthropicClients.Tool("get_time", "timezone")] };

        var first = await AnthropicClients.StreamAsync(client, ask);

        Assert.Equal("tool_use", first.StopReason);
        Assert.Equal(["get_weather", "get_time"], first.ToolUses.Select(u => u.Name));
        Assert.Equal(["call_w", "call_t"], first.ToolUses.Select(u => u.Id));
        Assert.Equal("""{"location":"Paris"}""", first.ToolUses[0].Input.ToString());
        Assert.Equal("""{"timezone":"Europe/Paris"}""", first.ToolUses[1].Input.ToString());
        Assert.Equal(50, first.FinalInputTokens);
        Assert.Equal(20, first.FinalOutputTokens);

        // The results come back in the other order, as agents send them.
        var next = ask with
        {
            Messages =
            [
                .. ask.Messages,
                new AssistantMessageParam(first.AsAssistantBlocks().ToList()),
                new UserMessageParam(new List<ContentBlockParam>
                {
                    new ToolResultBlockParam("call_t") { Content = "14:05" },
                    new ToolResultBlockParam("call_w") { Content = "18 degrees" },
                }),
            ],
        };
        var answer = await client.Messages.Create(next);

        Assert.True(Assert.Single(answer.Content).TryPickText(out var text));
        Assert.Equal("scripted", text!.Text);
        var messages = _scripted.Requests[1]["messages"]!.AsArray();
        Assert.Equal(["user", "assistant", "tool", "tool"], messages.Select(m => m!["role"]!.GetValue<string>()));
        Assert.Equal(["call_w", "call_t"], messages.Skip(2).Select(m => m!["tool_call_id"]!.GetValue<string>()));
        Assert.Equal("Paris", JsonNode.Parse(messages[1]!["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>())!["location"]!.GetValue<string>());
    }

    [Fact]
    public async Task Reasoning_from_an_openai_wire_deployment_streams_as_a_signed_thinking_block_before_the_text()
    {
        _scripted.Enqueue(ScriptedOpenAIUpstream.Chunk("""{"role":"assistant","content":""}""")
            + ScriptedOpenAIUpstream.Chunk("""{"reasoning_content":"The user greets; "}""")
            + ScriptedOpenAIUpstream.Chunk("""{"reasoning_content":"greet back."}""")
            + ScriptedOpenAIUpstream.Chunk("""{"content":"Hello!"}""")
            + ScriptedOpenAIUpstream.Chunk("{}", "stop")
            + ScriptedOpenAIUpstream.Usage(12, 9)
            + ScriptedOpenAIUpstream.Done);

        var streamed = await AnthropicClients.StreamAsync(AnthropicClients.For(_gateway), Ask("scripted", "Hello"));

        Assert.Equal("The user greets; greet back.", streamed.Thinking.ToString());
        Assert.StartsWith("modelgateway:", streamed.Signature, StringComparison.Ordinal);
        Assert.Equal("Hello!", streamed.Text.ToString());
        Assert.Equal(
            ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_stop",
             "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
            streamed.Kinds);
    }

    [Fact]
    public async Task Images_reach_an_openai_deployment_as_image_parts()
    {
        const string Png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
        var ask = Ask("gpt") with
        {
            Messages =
            [
                new UserMessageParam(new List<ContentBlockParam>
                {
                    new TextBlockParam("What are these?"),
                    new ImageBlockParam(new Base64ImageSource { Data = Png, MediaType = "image/png" }),
                    new ImageBlockParam(new UrlImageSource("https://example.com/cat.jpg")),
                }),
            ],
        };

        var message = await AnthropicClients.For(_gateway).Messages.Create(ask);

        Assert.Equal("end_turn", message.StopReason?.Raw());
        var content = Assert.Single(_upstream.Requests).Json!["messages"]![0]!["content"]!.AsArray();
        Assert.Equal(["text", "image_url", "image_url"], content.Select(p => p!["type"]!.GetValue<string>()));
        Assert.Equal("data:image/png;base64," + Png, content[1]!["image_url"]!["url"]!.GetValue<string>());
        Assert.Equal("https://example.com/cat.jpg", content[2]!["image_url"]!["url"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("claude")]
    [InlineData("gpt")]
    public async Task An_agent_conversation_of_six_tool_round_trips_carries_on_to_the_final_answer(string route)
    {
        var client = AnthropicClients.For(_gateway);
        var tools = new List<ToolUnion> { AnthropicClients.Tool("read_file", "path") };
        var conversation = new List<MessageParam> { new UserMessageParam("Read the six parts of the report, one at a time.") };
        for (var turn = 0; turn < 6; turn++)
        {
            _upstream.Enqueue(new UpstreamBehavior { RespondWithToolCall = true, ToolArguments = $$"""{"path":"part{{turn}}.md"}""" });
            var ask = new MessageCreateParams { Model = route, MaxTokens = 512, Messages = conversation, Tools = tools };

            // Agents stream; every other turn here reads the whole message, to cover both.
            List<ContentBlockParam> blocks;
            string id;
            if (turn % 2 == 0)
            {
                var streamed = await AnthropicClients.StreamAsync(client, ask);
                Assert.Equal("tool_use", streamed.StopReason);
                var use = Assert.Single(streamed.ToolUses);
                Assert.Equal($$"""{"path":"part{{turn}}.md"}""", JsonNode.Parse(use.Input.ToString())!.ToJsonString());
                blocks = [.. streamed.AsAssistantBlocks()];
                id = use.Id;
            }
            else
            {
                var message = await client.Messages.Create(ask);
                Assert.Equal("tool_use", message.StopReason?.Raw());
                Assert.True(message.Content.Single(b => b.TryPickToolUse(out _)).TryPickToolUse(out var use));
                Assert.Equal($"part{turn}.md", use!.Input["path"].GetString());
                blocks = [new ToolUseBlockParam { ID = use.ID, Name = use.Name, Input = use.Input }];
                id = use.ID;
            }

            conversation.Add(new AssistantMessageParam(blocks));
            conversation.Add(new UserMessageParam(new List<ContentBlockParam> { new ToolResultBlockParam(id) { Content = $"contents of part {turn}" } }));
        }

        var final = await AnthropicClients.StreamAsync(client, new MessageCreateParams { Model = route, MaxTokens = 512, Messages = conversation, Tools = tools });

        Assert.Equal(Answer, final.Text.ToString());
        Assert.Equal("end_turn", final.StopReason);
        var last = _upstream.Requests[^1].Json!;
        Assert.Equal(route == "claude" ? 13 : 13, last["messages"]!.AsArray().Count);
    }

    [Fact]
    public async Task Upstream_failures_reach_the_sdk_as_anthropic_errors()
    {
        var client = AnthropicClients.For(_gateway);
        _upstream.SetBehaviorForModel("gpt-4o", new UpstreamBehavior { StatusCode = 400, ErrorMessage = "Invalid value for 'foo'." });
        var invalid = await Assert.ThrowsAsync<AnthropicBadRequestException>(() => client.Messages.Create(Ask("gpt")));
        await Assert.ThrowsAsync<AnthropicNotFoundException>(() => client.Messages.Create(Ask("no-such-model")));

        // Every attempt fails: no deployment answered, which Anthropic clients know as "overloaded" (529).
        _upstream.SetBehaviorForModel("gpt-4o", new UpstreamBehavior { StatusCode = 503 });
        var overloaded = await Assert.ThrowsAsync<AnthropicOverloadedException>(() => client.Messages.Create(Ask("gpt")));
        _upstream.SetBehaviorForModel("gpt-4o", new UpstreamBehavior { StatusCode = 429, RetryAfter = TimeSpan.FromSeconds(2) });
        await Assert.ThrowsAsync<AnthropicRateLimitException>(() => client.Messages.Create(Ask("gpt")));

        Assert.Contains("Invalid value for 'foo'.", invalid.Message, StringComparison.Ordinal);
        Assert.NotNull(overloaded);
        Assert.DoesNotContain(TestConfigs.ProviderKey, _gateway.Logs.All, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"model":"gpt","messages":[{"role":"user","content":"Hi"}]}""", "max_tokens: Field required")]
    [InlineData("""{"model":"gpt","max_tokens":0,"messages":[{"role":"user","content":"Hi"}]}""", "max_tokens: Input should be greater than or equal to 1")]
    [InlineData("""{"model":"gpt","max_tokens":10,"messages":[]}""", "messages: at least one message is required")]
    [InlineData("""{"model":"gpt","max_tokens":10,"temperature":1.5,"messages":[{"role":"user","content":"Hi"}]}""", "temperature: Input should be less than or equal to 1")]
    [InlineData("""{"model":"gpt","max_tokens":10,"messages":[{"role":"robot","content":"Hi"}]}""", "messages.0.role: Input should be 'user' or 'assistant'")]
    [InlineData("""{"model":"gpt","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}""", "messages.0.content.0.tool_use_id: Field required")]
    [InlineData("""{"model":"gpt","max_tokens":10,"messages":[{"role":"user","content":"Hi"}""", "There was an error parsing the body of your request: it is not valid JSON.")]
    public async Task Invalid_requests_are_refused_before_any_upstream_call_in_anthropics_words(string body, string message)
    {
        using var response = await _gateway.PostAsync("v1/messages", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await AnthropicClients.ErrorAsync(response);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(message, error.GetProperty("message").GetString());
        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task Unknown_paths_methods_and_models_under_messages_answer_in_anthropic_shape()
    {
        using var unknownPath = await _gateway.PostAsync("v1/messages/batches", "{}");
        using var wrongMethod = await _gateway.Http.GetAsync("v1/messages");
        using var unknownModel = await _gateway.PostAsync("v1/messages", """{"model":"nope","max_tokens":10,"messages":[{"role":"user","content":"Hi"}]}""");
        using var openAI = await _gateway.PostAsync("v1/chat/nothing", "{}");

        Assert.Equal(HttpStatusCode.NotFound, unknownPath.StatusCode);
        Assert.Equal("not_found_error", (await AnthropicClients.ErrorAsync(unknownPath)).GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
        Assert.Equal("invalid_request_error", (await AnthropicClients.ErrorAsync(wrongMethod)).GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.NotFound, unknownModel.StatusCode);
        Assert.Contains("'nope'", (await AnthropicClients.ErrorAsync(unknownModel)).GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.True(unknownModel.Headers.Contains("request-id"));

        // OpenAI's paths keep OpenAI's shape.
        Assert.Equal("unknown_url", JsonDocument.Parse(await openAI.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("claude")]
    [InlineData("gpt")]
    public async Task A_stream_broken_mid_way_ends_with_an_error_event_and_never_looks_complete(string route)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(20), Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 };
        using var response = await _gateway.PostAsync("v1/messages", $$"""{"model":"{{route}}","max_tokens":300,"stream":true,"messages":[{"role":"user","content":"Hi"}]}""");
        var body = await ReadUntilCutAsync(response);

        Assert.Contains("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"", body, StringComparison.Ordinal);
        Assert.DoesNotContain("message_stop", body, StringComparison.Ordinal);

        // The SDK raises it rather than returning a short answer.
        await Assert.ThrowsAnyAsync<Exception>(() => AnthropicClients.StreamAsync(AnthropicClients.For(_gateway), Ask(route)));
    }

    [Fact]
    public async Task A_pass_through_stream_broken_mid_way_is_continued_on_an_openai_deployment_as_one_message()
    {
        _upstream.SetBehaviorForModel("claude-sonnet-4-5", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(20), Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 });

        var streamed = await AnthropicClients.StreamAsync(AnthropicClients.For(_gateway), Ask("claude-then-gpt"));

        Assert.Equal(Answer, streamed.Text.ToString());
        Assert.Equal("end_turn", streamed.StopReason);
        Assert.Equal(1, streamed.Kinds.Count(k => k == "message_start"));
        Assert.Equal(1, streamed.Kinds.Count(k => k == "content_block_start"));
        Assert.Equal("message_stop", streamed.Kinds[^1]);
        var continuation = _upstream.Requests[^1];
        Assert.Equal("gpt-4o", continuation.Model);
        var prefill = continuation.Json!["messages"]!.AsArray()[^1]!;
        Assert.Equal("assistant", prefill["role"]!.GetValue<string>());
        Assert.StartsWith(prefill["content"]!.GetValue<string>().TrimEnd(), Answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_translated_stream_broken_mid_way_is_continued_on_another_translated_deployment_as_one_message()
    {
        _upstream.SetBehaviorForModel("gpt-4o", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(20), Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 });

        var streamed = await AnthropicClients.StreamAsync(AnthropicClients.For(_gateway), Ask("gpt-then-gpt-b"));

        Assert.Equal(Answer, streamed.Text.ToString());
        Assert.Equal(1, streamed.Kinds.Count(k => k == "message_start"));
        Assert.Equal(1, streamed.Kinds.Count(k => k == "content_block_start"));
        Assert.Equal(["gpt-4o", "gpt-4o-b"], _upstream.Requests.Select(r => r.Model));
    }

    [Fact]
    public async Task A_server_tool_a_translated_deployment_cannot_run_is_dropped_and_named_unless_tool_choice_forces_it()
    {
        const string Tools = """
            "tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3},{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}]
            """;

        using var offered = await _gateway.PostAsync("v1/messages", $$"""{"model":"gpt","max_tokens":100,{{Tools}},"messages":[{"role":"user","content":"Weather in Paris?"}]}""");
        using var forced = await _gateway.PostAsync("v1/messages", $$"""{"model":"gpt","max_tokens":100,{{Tools}},"tool_choice":{"type":"tool","name":"web_search"},"messages":[{"role":"user","content":"News?"}]}""");

        Assert.Equal(HttpStatusCode.OK, offered.StatusCode);
        Assert.Equal("tools.web_search", offered.Headers.GetValues("x-modelgateway-dropped").Single());
        var tools = Assert.Single(_upstream.Requests).Json!["tools"]!.AsArray();
        Assert.Equal("get_weather", Assert.Single(tools)!["function"]!["name"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.BadRequest, forced.StatusCode);
        var error = await AnthropicClients.ErrorAsync(forced);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("web_search", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Single(_upstream.Requests);
    }

    [Fact]
    public async Task Count_tokens_answers_from_the_estimator_without_an_upstream_call()
    {
        using var small = await _gateway.PostAsync("v1/messages/count_tokens", """{"model":"gpt","messages":[{"role":"user","content":"Hi"}]}""");
        using var large = await _gateway.PostAsync("v1/messages/count_tokens", $$"""{"model":"claude","system":"Be terse.","messages":[{"role":"user","content":"{{string.Join(' ', Enumerable.Repeat("token", 200))}}"}]}""");
        using var unknown = await _gateway.PostAsync("v1/messages/count_tokens", """{"model":"nope","messages":[{"role":"user","content":"Hi"}]}""");

        var few = JsonDocument.Parse(await small.Content.ReadAsStringAsync()).RootElement.GetProperty("input_tokens").GetInt64();
        var many = JsonDocument.Parse(await large.Content.ReadAsStringAsync()).RootElement.GetProperty("input_tokens").GetInt64();
        Assert.InRange(few, 1, 20);
        Assert.InRange(many, 200, 400);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task A_max_tokens_above_the_deployments_limit_is_a_ceiling_clamped_for_it()
    {
        var message = await AnthropicClients.For(_gateway).Messages.Create(Ask("gpt", maxTokens: 128000));

        Assert.Equal("end_turn", message.StopReason?.Raw());
        Assert.Equal(16384, Assert.Single(_upstream.Requests).Json!["max_tokens"]!.GetValue<int>());
    }

    private static async Task<string> ReadUntilCutAsync(HttpResponseMessage response)
    {
        var text = new StringBuilder();
        var buffer = new byte[4096];
        await using var stream = await response.Content.ReadAsStreamAsync();
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                text.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            // The gateway aborts the connection after the error event: that is the point.
        }

        return text.ToString();
    }
}
