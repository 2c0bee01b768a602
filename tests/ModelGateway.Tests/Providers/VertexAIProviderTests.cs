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

namespace ModelGateway.Tests.Providers;

/// <summary>
/// An unmodified OpenAI SDK, through the gateway, gets everything from Gemini and Claude models on Vertex AI:
/// regional publisher URLs, the Gemini and Anthropic mappings, and OAuth tokens from a service-account key,
/// fetched once from the key's token endpoint and never written to a log.
/// </summary>
public sealed class VertexAIProviderTests : IAsyncLifetime
{
    private const string MasterKey = "mk-vertex-tests-0123456789";
    private const string ServiceAccount = "gateway@test-project.iam.gserviceaccount.com";
    private const string Untrusted = "stranger@test-project.iam.gserviceaccount.com";
    private FakeUpstreamServer _upstream = null!;
    private GoogleTokenServer _tokens = null!;
    private GatewayHost _gateway = null!;
    private string _directory = null!;
    private string _key = null!;
    private string _untrustedKey = null!;

    public async Task InitializeAsync()
    {
        _tokens = await GoogleTokenServer.StartAsync();
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { VertexAccessToken = _tokens.AccessToken });
        _directory = Directory.CreateTempSubdirectory("modelgateway-vertex-").FullName;
        _key = _tokens.CreateServiceAccountKey(ServiceAccount);
        _untrustedKey = _tokens.CreateServiceAccountKey(Untrusted, trusted: false);
        var keyPath = Path.Combine(_directory, "gateway-sa.json");
        var untrustedPath = Path.Combine(_directory, "stranger-sa.json");
        await File.WriteAllTextAsync(keyPath, _key);
        await File.WriteAllTextAsync(untrustedPath, _untrustedKey);
        const string Breaker = "circuitBreaker: { consecutiveFailures: 0, minimumThroughput: 1000 }";
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - name: vertex
                kind: vertex-ai
                baseUrl: "{{_upstream.VertexBaseUrl}}"
                project: test-project
                location: us-central1
                credentialsFile: "file:{{keyPath}}"
              - name: vertex-stranger
                kind: vertex-ai
                baseUrl: "{{_upstream.VertexBaseUrl}}"
                project: test-project
                location: europe-west4
                credentialsFile: "file:{{untrustedPath}}"
            deployments:
              - { name: vertex-gemini, provider: vertex, model: gemini-3-flash, pricing: { input: 1.25, output: 10, cacheRead: 0.3125 } }
              - { name: vertex-claude, provider: vertex, model: "claude-sonnet-4-5@20250929", capabilities: [chat, tools, vision, json_schema, prefill], pricing: { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 } }
              - { name: vertex-gemini-errors, provider: vertex, model: gemini-errors, {{Breaker}} }
              - { name: vertex-claude-errors, provider: vertex, model: "claude-errors@1", {{Breaker}} }
              - { name: vertex-gemini-limited, provider: vertex, model: gemini-limited, {{Breaker}} }
              - { name: vertex-claude-limited, provider: vertex, model: "claude-limited@1", {{Breaker}} }
              - { name: vertex-stranger, provider: vertex-stranger, model: gemini-2.5-flash, {{Breaker}} }
            routes:
              - { name: vertex-gemini, targets: [vertex-gemini] }
              - { name: vertex-claude, targets: [vertex-claude] }
              - { name: vertex-gemini-errors, targets: [vertex-gemini-errors], resilience: { maxAttempts: 1 } }
              - { name: vertex-claude-errors, targets: [vertex-claude-errors], resilience: { maxAttempts: 1 } }
              - { name: vertex-gemini-limited, targets: [vertex-gemini-limited], resilience: { maxAttempts: 1 } }
              - { name: vertex-claude-limited, targets: [vertex-claude-limited], resilience: { maxAttempts: 1 } }
              - { name: vertex-stranger, targets: [vertex-stranger], resilience: { maxAttempts: 1 } }
            """, new Dictionary<string, string?> { ["Admin:MasterKey"] = MasterKey });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
        await _tokens.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private ChatClient Chat(string route) => _gateway.OpenAI().GetChatClient(route);

    [Theory]
    [InlineData("vertex-gemini", "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-3-flash:generateContent", ":streamGenerateContent")]
    [InlineData("vertex-claude", "/v1/projects/test-project/locations/us-central1/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict", ":streamRawPredict")]
    public async Task Plain_and_streamed_chat_carry_the_same_text_on_the_publishers_regional_url(string route, string path, string streamMethod)
    {
        const string Answer = "Vertex says hello, one piece at a time.";
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5 };

        ChatCompletion whole = await Chat(route).CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hello")]);
        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat(route).CompleteChatStreamingAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hello")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(Answer, whole.Content[0].Text);
        Assert.Equal(Answer, streamed.ToString());
        Assert.Equal(ChatFinishReason.Stop, whole.FinishReason);
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal(2, _upstream.Requests.Count);
        Assert.Equal(path, _upstream.Requests[0].Path);
        Assert.EndsWith(streamMethod, _upstream.Requests[1].Path, StringComparison.Ordinal);
        Assert.All(_upstream.Requests, r => Assert.Equal("Bearer " + _tokens.AccessToken, r.Headers["authorization"]));
        if (route == "vertex-claude")
        {
            // Vertex takes the Messages body with its own anthropic_version and the model in the URL only.
            var body = _upstream.Requests[0].Json!;
            Assert.Equal("vertex-2023-10-16", body["anthropic_version"]!.GetValue<string>());
            Assert.Null(body["model"]);
            Assert.Equal("Be brief.", body["system"]![0]!["text"]!.GetValue<string>());
        }
        else
        {
            Assert.Equal("?alt=sse", _upstream.Requests[1].QueryString);
            Assert.Equal("Be brief.", _upstream.Requests[0].Json!["systemInstruction"]!["parts"]![0]!["text"]!.GetValue<string>());
        }
    }

    [Theory]
    [InlineData("vertex-gemini")]
    [InlineData("vertex-claude")]
    public async Task A_streamed_tool_round_trip_gives_arguments_that_parse_and_sends_the_results_back(string route)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { ToolCalls = [new("get_weather", """{"location":"Paris","unit":"celsius"}""")] };
        var weather = ChatTool.CreateFunctionTool("get_weather", "Weather now", BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string"}}}"""));
        var options = new ChatCompletionOptions { Tools = { weather } };
        List<ChatMessage> conversation = [new UserChatMessage("Weather in Paris?")];

        var (ids, names, arguments, finish) = await GeminiProviderTests.StreamToolCallsAsync(Chat(route), conversation, options);

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal(["get_weather"], names);
        Assert.Equal("celsius", JsonDocument.Parse(arguments[0]).RootElement.GetProperty("unit").GetString());
        var id = Assert.Single(ids);

        conversation.Add(new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall(id, names[0], BinaryData.FromString(arguments[0]))]));
        conversation.Add(new ToolChatMessage(id, "18 degrees and sunny"));
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "It is 18 degrees." };
        _upstream.ClearRecorded();

        ChatCompletion answer = await Chat(route).CompleteChatAsync(conversation, options);

        Assert.Equal("It is 18 degrees.", answer.Content[0].Text);
        var body = Assert.Single(_upstream.Requests).Json!;
        if (route == "vertex-claude")
        {
            var messages = body["messages"]!.AsArray();
            Assert.Equal("tool_use", messages[1]!["content"]![0]!["type"]!.GetValue<string>());
            Assert.Equal(id, messages[2]!["content"]![0]!["tool_use_id"]!.GetValue<string>());
        }
        else
        {
            var contents = body["contents"]!.AsArray();
            var call = contents[1]!["parts"]![0]!;
            Assert.Equal("get_weather", call["functionCall"]!["name"]!.GetValue<string>());

            // Gemini 3 refuses a replayed call without a thought signature; an OpenAI client has none to give back.
            Assert.Equal("skip_thought_signature_validator", call["thoughtSignature"]!.GetValue<string>());
            var result = contents[2]!["parts"]![0]!["functionResponse"]!;
            Assert.Equal("get_weather", result["name"]!.GetValue<string>());
            Assert.Equal("18 degrees and sunny", result["response"]!["output"]!.GetValue<string>());
        }
    }

    [Theory]
    [InlineData("vertex-gemini")]
    [InlineData("vertex-claude")]
    public async Task Inline_images_go_up_as_bytes_and_an_image_url_is_a_clear_400(string route)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "A red dot." };
        var png = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==");

        ChatCompletion inline = await Chat(route).CompleteChatAsync([new UserChatMessage(
            ChatMessageContentPart.CreateTextPart("What is this?"),
            ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(png), "image/png"))]);
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => Chat(route).CompleteChatAsync([new UserChatMessage(
            ChatMessageContentPart.CreateImagePart(new Uri("https://example.com/cat.jpg")))]));

        Assert.Equal("A red dot.", inline.Content[0].Text);
        var body = Assert.Single(_upstream.Requests).Json!;
        var data = route == "vertex-claude"
            ? body["messages"]![0]!["content"]![1]!["source"]!["data"]!.GetValue<string>()
            : body["contents"]![0]!["parts"]![1]!["inlineData"]!["data"]!.GetValue<string>();
        Assert.Equal(Convert.ToBase64String(png), data);
        Assert.Equal(400, refused.Status);
        Assert.Contains("inline", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Where_an_admin_allows_fetching_claude_gets_an_image_url_as_a_base64_source()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "A cat." };
        var fetcher = new CannedMediaFetcher("image/jpeg", [0xFF, 0xD8, 0xFF, 0xE0]);
        await using var gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: vertex, kind: vertex-ai, baseUrl: "{{_upstream.VertexBaseUrl}}", project: test-project, location: global, credentialsFile: "file:{{Path.Combine(_directory, "gateway-sa.json")}}" }
            deployments:
              - { name: claude, provider: vertex, model: "claude-sonnet-4-5@20250929", mediaFetch: { allowedHosts: ["images.example.com"] } }
            routes:
              - { name: claude, targets: [claude] }
            """, configure: builder => builder.Services.AddSingleton<IMediaFetcher>(fetcher));

        ChatCompletion answer = await gateway.OpenAI().GetChatClient("claude").CompleteChatAsync([new UserChatMessage(
            ChatMessageContentPart.CreateTextPart("What is this?"),
            ChatMessageContentPart.CreateImagePart(new Uri("https://images.example.com/cat.jpg")))]);

        Assert.Equal("A cat.", answer.Content[0].Text);
        Assert.Equal(["https://images.example.com/cat.jpg"], fetcher.Fetched);
        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal("/v1/projects/test-project/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict", seen.Path);
        var source = seen.Json!["messages"]![0]!["content"]![1]!["source"]!;
        Assert.Equal("base64", source["type"]!.GetValue<string>());
        Assert.Equal("image/jpeg", source["media_type"]!.GetValue<string>());
        Assert.Null(source["url"]);
    }

    [Theory]
    [InlineData("vertex-gemini", 3000, 0.002875)]
    [InlineData("vertex-claude", 3500, 0.006975)]
    public async Task Usage_counts_cached_tokens_in_the_prompt_and_cost_prices_them(string route, int promptTokens, double cost)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Cached answer.", PromptTokens = 1000, CachedTokens = 2000, CacheWriteTokens = 500, CompletionTokens = 100 };

        ChatCompletion whole = await Chat(route).CompleteChatAsync([new UserChatMessage("Hi")]);
        ChatTokenUsage? streamedUsage = null;
        await foreach (var update in Chat(route).CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
        {
            streamedUsage ??= update.Usage;
        }

        // Gemini: 1000 fresh + 2000 cached. Claude: 1000 fresh + 2000 read + 500 written. Both: 100 out.
        Assert.Equal(promptTokens, whole.Usage.InputTokenCount);
        Assert.Equal(2000, whole.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(100, whole.Usage.OutputTokenCount);
        Assert.NotNull(streamedUsage);
        Assert.Equal(promptTokens, streamedUsage.InputTokenCount);
        Assert.Equal(2000, streamedUsage.InputTokenDetails.CachedTokenCount);
        var row = await UsageRowAsync(route);
        Assert.Equal(2, row.GetProperty("requests").GetInt64());
        Assert.Equal(2 * cost, row.GetProperty("cost_usd").GetDouble(), 9);
    }

    [Theory]
    [InlineData("vertex-gemini")]
    [InlineData("vertex-claude")]
    public async Task Errors_reach_the_client_in_openai_shape_each_as_its_class(string route)
    {
        var errors = route + "-errors";
        var model = route == "vertex-claude" ? "claude-errors@1" : "gemini-errors";
        var request = $$"""{"model":"{{errors}}","messages":[{"role":"user","content":"Hi"}]}""";
        _upstream.Enqueue(model, new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded" });
        using var tooLong = await _gateway.PostAsync("v1/chat/completions", request);
        _upstream.Enqueue(model, new UpstreamBehavior { StatusCode = 400, ErrorMessage = "temperature: must be between 0 and 1" });
        using var invalid = await _gateway.PostAsync("v1/chat/completions", request);
        _upstream.Enqueue(model, new UpstreamBehavior { StatusCode = 404 });
        using var notFound = await _gateway.PostAsync("v1/chat/completions", request);
        _upstream.Enqueue(model, new UpstreamBehavior { StatusCode = 403 });
        using var forbidden = await _gateway.PostAsync("v1/chat/completions", request);
        _upstream.Enqueue(model, new UpstreamBehavior { StatusCode = 503 });
        using var unavailable = await _gateway.PostAsync("v1/chat/completions", request);
        _upstream.Enqueue(model, new UpstreamBehavior { StatusCode = 500 });
        using var failed = await _gateway.PostAsync("v1/chat/completions", request);

        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        Assert.Equal("context_length_exceeded", (await GeminiProviderTests.ErrorAsync(tooLong)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains("must be between 0 and 1", (await GeminiProviderTests.ErrorAsync(invalid)).GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadGateway, notFound.StatusCode);
        Assert.Equal("upstream_misconfigured", (await GeminiProviderTests.ErrorAsync(notFound)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.BadGateway, forbidden.StatusCode);
        Assert.Equal("upstream_misconfigured", (await GeminiProviderTests.ErrorAsync(forbidden)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, unavailable.StatusCode);
        Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);
        Assert.Equal(6, _upstream.Requests.Count);
    }

    [Theory]
    [InlineData("vertex-gemini")]
    [InlineData("vertex-claude")]
    public async Task A_quota_error_is_a_429_that_waits_as_long_as_vertex_says(string route)
    {
        var model = route == "vertex-claude" ? "claude-limited@1" : "gemini-limited";
        _upstream.Enqueue(model, new UpstreamBehavior { StatusCode = 429, RetryAfter = TimeSpan.FromSeconds(9) });

        using var limited = await _gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{route}}-limited","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal("rate_limit_exceeded", (await GeminiProviderTests.ErrorAsync(limited)).GetProperty("code").GetString());
        Assert.Equal("9", limited.Headers.GetValues("retry-after").Single());
    }

    [Fact]
    public async Task One_token_serves_many_requests_and_never_appears_in_the_logs()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ok" };

        for (var i = 0; i < 3; i++)
        {
            await Chat("vertex-gemini").CompleteChatAsync([new UserChatMessage("Hi")]);
            await foreach (var _ in Chat("vertex-claude").CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
            {
            }
        }

        Assert.Equal(6, _upstream.Requests.Count);
        Assert.All(_upstream.Requests, r => Assert.Equal("Bearer " + _tokens.AccessToken, r.Headers["authorization"]));
        Assert.Equal(1, _tokens.IssuedTo(ServiceAccount));
        Assert.DoesNotContain(_tokens.AccessToken, _gateway.Logs.All, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", _gateway.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_the_token_endpoint_refuses_is_a_502_misconfiguration_that_reaches_no_model()
    {
        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"vertex-stranger","messages":[{"role":"user","content":"Hi"}]}""");
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_misconfigured", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Empty(_upstream.Requests);
        Assert.True(_tokens.Refused >= 1);
        var logged = await _gateway.Logs.WaitForLinesAsync(l => l.Contains("vertex-stranger", StringComparison.Ordinal) && l.Contains("invalid_grant", StringComparison.Ordinal));
        Assert.NotEmpty(logged);
        Assert.DoesNotContain("PRIVATE KEY", _gateway.Logs.All, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", body, StringComparison.Ordinal);
    }

    private async Task<JsonElement> UsageRowAsync(string deployment)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "admin/usage?group_by=deployment");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _gateway.Http.SendAsync(request);
        var rows = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
        return rows.EnumerateArray().Single(r => r.GetProperty("deployment").GetString() == deployment);
    }
}
