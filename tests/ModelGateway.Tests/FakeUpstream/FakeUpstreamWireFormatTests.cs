using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>Byte-level checks of the OpenAI and Azure OpenAI wire formats.</summary>
public sealed class FakeUpstreamWireFormatTests
{
    private static readonly string[] UsageFields =
        ["prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details"];

    [Fact]
    public async Task Chat_completion_fields_come_in_openai_order()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody()));
        var json = await ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        Assert.NotNull(response.Content.Headers.ContentLength);
        Assert.Equal(["id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"], PropertyNames(json));
        Assert.Equal("chat.completion", json.GetProperty("object").GetString());
        var choice = json.GetProperty("choices")[0];
        Assert.Equal(["index", "message", "logprobs", "finish_reason"], PropertyNames(choice));
        Assert.Equal(["role", "content", "refusal", "annotations"], PropertyNames(choice.GetProperty("message")));
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var usage = json.GetProperty("usage");
        Assert.Equal(UsageFields, PropertyNames(usage));
        Assert.Equal(["cached_tokens", "audio_tokens"], PropertyNames(usage.GetProperty("prompt_tokens_details")));
        Assert.Equal(
            ["reasoning_tokens", "audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens"],
            PropertyNames(usage.GetProperty("completion_tokens_details")));
        Assert.True(response.Headers.Contains("x-request-id"));
    }

    [Fact]
    public async Task Streaming_response_ends_with_done_marker()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.Equal("text/event-stream; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        Assert.Null(response.Content.Headers.ContentLength);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.Equal(1 + 5 + 1, chunks.Count); // role, five pieces, finish

        Assert.All(chunks, c =>
        {
            Assert.Equal(["id", "object", "created", "model", "service_tier", "system_fingerprint", "choices"], PropertyNames(c));
            Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString());
            Assert.Equal(chunks[0].GetProperty("id").GetString(), c.GetProperty("id").GetString());
            Assert.Equal(chunks[0].GetProperty("created").GetInt64(), c.GetProperty("created").GetInt64());
            Assert.Equal("gpt-4o", c.GetProperty("model").GetString());
        });
        Assert.Equal(
            """{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}""",
            chunks[0].GetProperty("choices")[0].GetRawText());
        Assert.Equal(
            """{"index":0,"delta":{"content":"Hello "},"logprobs":null,"finish_reason":null}""",
            chunks[1].GetProperty("choices")[0].GetRawText());
        Assert.Equal(
            """{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}""",
            chunks[^1].GetProperty("choices")[0].GetRawText());
        var text = string.Concat(chunks.Skip(1).SkipLast(1).Select(c => c.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString()));
        Assert.Equal("Hello from gpt-4o. This reply is streamed in pieces.", text);
    }

    [Fact]
    public async Task Streaming_with_include_usage_adds_null_usage_to_chunks_and_a_final_usage_chunk()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { PromptTokens = 42, CompletionTokens = 7 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true, includeUsage: true)));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks[..^1], c =>
        {
            Assert.Equal("usage", PropertyNames(c)[^1]);
            Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind);
        });
        Assert.Equal("stop", chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var last = chunks[^1];
        Assert.Equal(0, last.GetProperty("choices").GetArrayLength());
        var usage = last.GetProperty("usage");
        Assert.Equal(UsageFields, PropertyNames(usage));
        Assert.Equal(42, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(7, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(49, usage.GetProperty("total_tokens").GetInt32());
    }

    [Theory]
    [InlineData("Hello from the fake upstream, streamed in pieces.", 5)]
    [InlineData("Hello  spaced\twords\n and lines ", 3)]
    [InlineData("Short", 4)]
    [InlineData("Déjà vu 😀 naïve 😀😀", 8)]
    [InlineData("x", 5)]
    public async Task Streamed_pieces_concatenate_to_exactly_the_content(string content, int chunkCount)
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Content = content, ChunkCount = chunkCount };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        var pieces = events[1..^2]
            .Select(e => JsonNode.Parse(e)!["choices"]![0]!["delta"]!["content"]!.GetValue<string>())
            .ToList();
        Assert.Equal(content, string.Concat(pieces));
        Assert.Equal(Math.Min(chunkCount, content.EnumerateRunes().Count()), pieces.Count);
        Assert.All(pieces, p => Assert.NotEmpty(p));
        Assert.All(pieces, p => Assert.False(char.IsLowSurrogate(p[0])));
    }

    [Fact]
    public async Task Non_ascii_content_is_sent_as_raw_utf8()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Content = "Grüße 😀" };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody()));
        var bytes = await response.Content.ReadAsByteArrayAsync();

        Assert.Contains("\"content\":\"Grüße 😀\"", Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prefilled_assistant_message_is_continued_with_the_rest_of_the_content()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Content = "The quick brown fox jumps over the lazy dog." };
        using var http = NewClient(server);
        var body = ChatBody(stream: true, extra: b =>
        {
            b["messages"]!.AsArray().Add(new JsonObject { ["role"] = "assistant", ["content"] = "The quick brown" });
            b["continue_final_message"] = true;
            b["add_generation_prompt"] = false;
        });

        using var response = await SendAsync(http, Post("/v1/chat/completions", body));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        var text = string.Concat(events[1..^2].Select(e => JsonNode.Parse(e)!["choices"]![0]!["delta"]!["content"]!.GetValue<string>()));
        Assert.Equal(" fox jumps over the lazy dog.", text);
    }

    [Fact]
    public async Task Json_response_format_yields_json_content()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);
        var body = ChatBody(extra: b => b["response_format"] = new JsonObject { ["type"] = "json_object" });

        using var response = await SendAsync(http, Post("/v1/chat/completions", body));
        var json = await ReadJsonAsync(response);

        var content = json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        Assert.Equal("""{"answer":"Hello from gpt-4o"}""", content);
    }

    [Fact]
    public async Task Tool_call_stream_opens_with_the_call_and_sends_argument_fragments()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { RespondWithToolCall = true, ChunkCount = 3 };
        using var http = NewClient(server);
        var body = ChatBody(stream: true, extra: b => b["tools"] = JsonNode.Parse(
            """[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}},{"type":"function","function":{"name":"other"}}]"""));

        using var response = await SendAsync(http, Post("/v1/chat/completions", body));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        var first = JsonNode.Parse(events[0])!["choices"]![0]!["delta"]!;
        Assert.Equal(
            """{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"ID","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null}""",
            first.ToJsonString().Replace(first["tool_calls"]![0]!["id"]!.GetValue<string>(), "ID", StringComparison.Ordinal));
        var fragments = events[1..^2].Select(e => JsonNode.Parse(e)!["choices"]![0]!["delta"]!).ToList();
        Assert.All(fragments, f => Assert.Equal(["tool_calls"], f.AsObject().Select(p => p.Key)));
        Assert.Equal("""{"location":"Paris"}""", string.Concat(fragments.Select(f => f["tool_calls"]![0]!["function"]!["arguments"]!.GetValue<string>())));
        Assert.Equal("tool_calls", JsonNode.Parse(events[^2])!["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task Tool_choice_none_gets_a_text_answer()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { RespondWithToolCall = true };
        using var http = NewClient(server);
        var body = ChatBody(extra: b =>
        {
            b["tools"] = JsonNode.Parse("""[{"type":"function","function":{"name":"get_weather"}}]""");
            b["tool_choice"] = "none";
        });

        using var response = await SendAsync(http, Post("/v1/chat/completions", body));
        var json = await ReadJsonAsync(response);

        Assert.Equal("stop", json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Asking_for_n_choices_returns_n_identical_choices()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(extra: b => b["n"] = 3)));
        var json = await ReadJsonAsync(response);

        var choices = json.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(choices, c => Assert.Equal("Hello from gpt-4o. This reply is streamed in pieces.", c.GetProperty("message").GetProperty("content").GetString()));
        Assert.Equal(15, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Legacy_completion_has_text_choices_and_plain_usage()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/completions", """{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test"}"""));
        var json = await ReadJsonAsync(response);

        Assert.Equal(["id", "object", "created", "model", "choices", "usage"], PropertyNames(json));
        Assert.StartsWith("cmpl-", json.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("text_completion", json.GetProperty("object").GetString());
        Assert.Equal(
            """{"text":"Hello from gpt-3.5-turbo-instruct. This reply is streamed in pieces.","index":0,"logprobs":null,"finish_reason":"stop"}""",
            json.GetProperty("choices")[0].GetRawText());
        Assert.Equal("""{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}""", json.GetProperty("usage").GetRawText());
    }

    [Fact]
    public async Task Legacy_completion_streams_text_pieces_then_done()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/completions", """{"model":"m","prompt":["a"],"stream":true}"""));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chunks, c => Assert.Equal("text_completion", c["object"]!.GetValue<string>()));
        Assert.Equal("Hello from m. This reply is streamed in pieces.", string.Concat(chunks.Select(c => c["choices"]![0]!["text"]!.GetValue<string>())));
        Assert.Equal("stop", chunks[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task Embeddings_accept_every_input_shape_and_base64_matches_floats()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { EmbeddingDimensions = 4 });
        using var http = NewClient(server);

        async Task<JsonElement> EmbedAsync(string body)
        {
            using var response = await SendAsync(http, Post("/v1/embeddings", body));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return await ReadJsonAsync(response);
        }

        var floats = await EmbedAsync("""{"model":"e","input":"hello world"}""");
        var base64 = await EmbedAsync("""{"model":"e","input":"hello world","encoding_format":"base64"}""");
        var tokens = await EmbedAsync("""{"model":"e","input":[1,2,3]}""");
        var tokenLists = await EmbedAsync("""{"model":"e","input":[[1,2],[3]],"dimensions":6}""");
        var strings = await EmbedAsync("""{"model":"e","input":["a","hello world"]}""");

        Assert.Equal(["object", "data", "model", "usage"], PropertyNames(floats));
        Assert.Equal(["object", "index", "embedding"], PropertyNames(floats.GetProperty("data")[0]));
        Assert.Equal("""{"prompt_tokens":3,"total_tokens":3}""", floats.GetProperty("usage").GetRawText());
        var vector = floats.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(4, vector.Length);
        var raw = Convert.FromBase64String(base64.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        var decoded = Enumerable.Range(0, raw.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(i * 4))).ToArray();
        Assert.Equal(vector, decoded);
        Assert.Equal(1, tokens.GetProperty("data").GetArrayLength());
        Assert.Equal(3, tokens.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(2, tokenLists.GetProperty("data").GetArrayLength());
        Assert.Equal(6, tokenLists.GetProperty("data")[1].GetProperty("embedding").GetArrayLength());
        Assert.Equal(vector, strings.GetProperty("data")[1].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()));
    }

    [Fact]
    public async Task Models_list_names_configured_models_and_the_default()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.SetBehaviorForModel("gpt-4o", new UpstreamBehavior());
        server.Enqueue("gpt-4o-mini", new UpstreamBehavior());
        using var http = NewClient(server);

        using var response = await http.GetAsync(new Uri("/v1/models", UriKind.Relative));
        var json = await ReadJsonAsync(response);

        Assert.Equal("list", json.GetProperty("object").GetString());
        Assert.Equal(["fake-model", "gpt-4o", "gpt-4o-mini"], json.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        Assert.Equal(["id", "object", "created", "owned_by"], PropertyNames(json.GetProperty("data")[0]));
    }

    [Fact]
    public async Task Azure_path_answers_as_the_deployment_and_records_it_as_the_model()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = "azure-key" });
        server.SetBehaviorForModel("gpt4o-eu", new UpstreamBehavior { Content = "from the EU deployment" });
        using var http = NewClient(server);
        var request = Post("/openai/deployments/gpt4o-eu/chat/completions?api-version=2024-10-21", ChatBody(model: "ignored"));
        request.Headers.Add("api-key", "azure-key");

        using var response = await SendAsync(http, request);
        var json = await ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("gpt4o-eu", json.GetProperty("model").GetString());
        Assert.Equal("from the EU deployment", json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        var recorded = Assert.Single(server.Requests);
        Assert.Equal("gpt4o-eu", recorded.Model);
        Assert.Equal("/openai/deployments/gpt4o-eu/chat/completions", recorded.Path);
        Assert.Equal("?api-version=2024-10-21", recorded.QueryString);
        Assert.Equal("azure-key", recorded.Headers["API-KEY"]);
    }

    [Fact]
    public async Task Azure_path_without_api_version_is_not_found_in_azure_shape()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/openai/deployments/d1/embeddings", """{"input":"x"}"""));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("""{"error":{"code":"404","message":"Resource not found"}}""", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Azure_wrong_key_gets_the_azure_401_body()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = "azure-key" });
        using var http = NewClient(server);
        var request = Post("/openai/deployments/d1/chat/completions?api-version=2024-10-21", ChatBody());
        request.Headers.Add("api-key", "wrong");

        using var response = await SendAsync(http, request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(
            """{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}""",
            await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Openai_path_needs_the_bearer_key_not_the_azure_header()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = "sk-right" });
        server.Enqueue(new UpstreamBehavior { Content = "first request consumed me" });
        using var http = NewClient(server);
        var azureStyle = Post("/v1/chat/completions", ChatBody());
        azureStyle.Headers.Add("api-key", "sk-right");

        using var missing = await SendAsync(http, azureStyle);
        using var wrong = await SendAsync(http, Post("/v1/chat/completions", ChatBody(), bearer: "sk-wrong"));
        using var right = await SendAsync(http, Post("/v1/chat/completions", ChatBody(), bearer: "sk-right"));

        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        Assert.Contains("You didn't provide an API key", await missing.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        var error = (await ReadJsonAsync(wrong)).GetProperty("error");
        Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.OK, right.StatusCode);
        // Rejected requests do not consume queued behaviours.
        Assert.Contains("first request consumed me", await right.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(3, server.RequestCount);
    }

    [Theory]
    [InlineData("/v1/chat/completions", "{\"model\":", "We could not parse the JSON body of your request.")]
    [InlineData("/v1/chat/completions", "{\"messages\":[]}", "you must provide a model parameter")]
    [InlineData("/v1/chat/completions", "{\"model\":\"m\"}", "Missing required parameter: 'messages'.")]
    [InlineData("/v1/embeddings", "{\"model\":\"m\"}", "Missing required parameter: 'input'.")]
    [InlineData("/v1/completions", "", "We could not parse the JSON body of your request.")]
    public async Task Bad_requests_get_a_400_invalid_request_error(string path, string body, string message)
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post(path, body));
        var error = (await ReadJsonAsync(response)).GetProperty("error");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(message, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(["message", "type", "param", "code"], PropertyNames(error));
    }

    [Fact]
    public async Task Unknown_path_is_a_404_naming_the_url()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/nothing", "{}"));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("Invalid URL (POST /v1/nothing)", (await ReadJsonAsync(response)).GetProperty("error").GetProperty("message").GetString());
    }

    [Theory]
    [InlineData(429, null, "requests", "rate_limit_exceeded", "Rate limit reached for requests")]
    [InlineData(500, null, "server_error", null, "The server had an error while processing your request. Sorry about that!")]
    [InlineData(503, null, "server_error", null, "The engine is currently overloaded, please try again later")]
    [InlineData(404, null, "invalid_request_error", "model_not_found", "The model `gpt-4o` does not exist or you do not have access to it.")]
    [InlineData(400, "context_length_exceeded", "invalid_request_error", "context_length_exceeded", "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.")]
    [InlineData(400, "content_filter", "invalid_request_error", "content_filter", "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.")]
    public async Task Error_behaviours_answer_in_openai_error_shape(int status, string? code, string type, string? expectedCode, string message)
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { StatusCode = status, ErrorCode = code };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        var error = (await ReadJsonAsync(response)).GetProperty("error");

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal(["message", "type", "param", "code"], PropertyNames(error));
        Assert.Equal(message, error.GetProperty("message").GetString());
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        Assert.Equal(expectedCode, error.GetProperty("code").ValueKind == JsonValueKind.Null ? null : error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Error_behaviour_sends_its_extra_headers_and_custom_fields()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior
        {
            StatusCode = 429,
            ErrorMessage = "Slow down",
            ErrorType = "tokens",
            ErrorCode = "rate_limit_exceeded",
            ErrorParam = "messages",
            Headers = new Dictionary<string, string> { ["retry-after"] = "2", ["retry-after-ms"] = "1500", ["x-ratelimit-remaining-requests"] = "0" },
        };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody()));

        Assert.Equal(TimeSpan.FromSeconds(2), response.Headers.RetryAfter!.Delta);
        Assert.Equal("1500", response.Headers.GetValues("retry-after-ms").Single());
        Assert.Equal("0", response.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        Assert.Equal(
            """{"error":{"message":"Slow down","type":"tokens","param":"messages","code":"rate_limit_exceeded"}}""",
            await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Success_behaviour_headers_reach_the_client()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Headers = new Dictionary<string, string> { ["openai-organization"] = "org-fake", ["set-cookie"] = "a=b" } };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));

        Assert.Equal("org-fake", response.Headers.GetValues("openai-organization").Single());
        Assert.Equal("a=b", response.Headers.GetValues("set-cookie").Single());
        Assert.Equal(new MediaTypeHeaderValue("text/event-stream") { CharSet = "utf-8" }, response.Content.Headers.ContentType);
    }
}
