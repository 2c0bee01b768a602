using System.Net;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream.Anthropic;

/// <summary>Byte-level checks of the Anthropic Messages wire: headers, versions, validation, events and faults.</summary>
public sealed class AnthropicWireTests
{
    private const string Key = "sk-ant-wire-0001";

    private static string Body(bool stream = false, Action<JsonObject>? extra = null, string? assistantPrefill = null)
    {
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Say hello" });
        if (assistantPrefill is not null)
        {
            messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = assistantPrefill });
        }

        var body = new JsonObject { ["model"] = "claude-haiku-4-5", ["max_tokens"] = 256, ["messages"] = messages };
        if (stream)
        {
            body["stream"] = true;
        }

        extra?.Invoke(body);
        return body.ToJsonString();
    }

    private static HttpRequestMessage Messages(string json, string? version = "2023-06-01", string? apiKey = Key, string path = "/v1/messages")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") };
        if (version is not null)
        {
            request.Headers.Add("anthropic-version", version);
        }

        if (apiKey is not null)
        {
            request.Headers.Add("x-api-key", apiKey);
        }

        return request;
    }

    private static async Task<(HttpStatusCode Status, string Type, string Message, HttpResponseMessage Response)> ErrorOfAsync(HttpClient http, HttpRequestMessage request)
    {
        var response = await SendAsync(http, request);
        var json = await ReadJsonAsync(response);
        Assert.Equal("error", json.GetProperty("type").GetString());
        Assert.StartsWith("req_", json.GetProperty("request_id").GetString(), StringComparison.Ordinal);
        var error = json.GetProperty("error");
        return (response.StatusCode, error.GetProperty("type").GetString()!, error.GetProperty("message").GetString()!, response);
    }

    [Fact]
    public async Task Claude_code_style_request_with_x_api_key_and_beta_is_answered_and_recorded()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = Key });
        using var http = NewClient(server);
        var request = Messages(Body(), path: "/v1/messages?beta=true");
        request.Headers.Add("anthropic-beta", "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14");

        using var response = await SendAsync(http, request);
        var json = await ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("req_", response.Headers.GetValues("request-id").Single(), StringComparison.Ordinal);
        Assert.Equal(["model", "id", "type", "role", "content", "stop_reason", "stop_sequence", "usage"], PropertyNames(json));
        Assert.Equal(
            ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation", "output_tokens", "service_tier"],
            PropertyNames(json.GetProperty("usage")));
        var recorded = Assert.Single(server.Requests);
        Assert.Equal("?beta=true", recorded.QueryString);
        Assert.Equal("interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14", recorded.Headers["anthropic-beta"]);
        Assert.Equal(UpstreamWire.Anthropic, recorded.Wire);
    }

    [Fact]
    public async Task Keys_versions_and_required_fields_are_checked_as_anthropic_checks_them()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = Key });
        using var http = NewClient(server);

        var missingKey = await ErrorOfAsync(http, Messages(Body(), apiKey: null));
        var wrongKey = await ErrorOfAsync(http, Messages(Body(), apiKey: "sk-ant-nope"));
        var bearer = Messages(Body(), version: "2026-10-21", apiKey: null);
        bearer.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Key);
        using var bearerResponse = await SendAsync(http, bearer);
        var noVersion = await ErrorOfAsync(http, Messages(Body(), version: null));
        var badVersion = await ErrorOfAsync(http, Messages(Body(), version: "2024-01-01"));
        var noMaxTokens = await ErrorOfAsync(http, Messages(Body(extra: b => b.Remove("max_tokens"))));
        var temperature = await ErrorOfAsync(http, Messages(Body(extra: b => b["temperature"] = 0.2), version: "2026-10-21"));
        var topK = await ErrorOfAsync(http, Messages(Body(extra: b => b["top_k"] = 5), version: "2026-10-21"));
        using var oldVersionTemperature = await SendAsync(http, Messages(Body(extra: b => b["temperature"] = 0.2), version: "2023-06-01"));
        var notJson = await ErrorOfAsync(http, Messages("{not json"));

        Assert.Equal((HttpStatusCode.Unauthorized, "authentication_error", "x-api-key header is required"), (missingKey.Status, missingKey.Type, missingKey.Message));
        Assert.Equal((HttpStatusCode.Unauthorized, "authentication_error", "invalid x-api-key"), (wrongKey.Status, wrongKey.Type, wrongKey.Message));
        Assert.Equal(HttpStatusCode.OK, bearerResponse.StatusCode);
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_request_error", "anthropic-version: header is required"), (noVersion.Status, noVersion.Type, noVersion.Message));
        Assert.Equal(HttpStatusCode.BadRequest, badVersion.Status);
        Assert.Equal((HttpStatusCode.BadRequest, "max_tokens: Field required"), (noMaxTokens.Status, noMaxTokens.Message));
        Assert.Equal((HttpStatusCode.BadRequest, "invalid_request_error", "temperature: Extra inputs are not permitted"), (temperature.Status, temperature.Type, temperature.Message));
        Assert.Equal("top_k: Extra inputs are not permitted", topK.Message);
        Assert.Equal(HttpStatusCode.OK, oldVersionTemperature.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, notJson.Status);
        Assert.True(missingKey.Response.Headers.Contains("request-id"));
    }

    [Fact]
    public async Task Stream_is_named_events_with_ping_and_cumulative_usage()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { ChunkCount = 2, CachedTokens = 5, CacheWriteTokens = 6 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Messages(Body(stream: true)));
        using var sse = await NamedSseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.Equal("text/event-stream; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        Assert.Equal(
            ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
            events.Select(e => e.Name));
        foreach (var e in events)
        {
            Assert.Equal(e.Name, JsonNode.Parse(e.Data)!["type"]!.GetValue<string>());
        }

        var start = JsonNode.Parse(events[0].Data)!["message"]!;
        Assert.Equal(5, start["usage"]!["cache_read_input_tokens"]!.GetValue<int>());
        Assert.Equal(6, start["usage"]!["cache_creation_input_tokens"]!.GetValue<int>());
        Assert.Empty(start["content"]!.AsArray());
        var delta = JsonNode.Parse(events[6].Data)!;
        Assert.Equal("end_turn", delta["delta"]!["stop_reason"]!.GetValue<string>());
        Assert.Null(delta["delta"]!["stop_sequence"]);
        Assert.Equal(2, delta["usage"]!["output_tokens"]!.GetValue<int>());
        Assert.Equal("""{"type":"message_stop"}""", events[^1].Data);
    }

    [Fact]
    public async Task A_trailing_assistant_message_is_continued_not_repeated()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Content = "The answer is 42, as always." };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Messages(Body(assistantPrefill: "The answer is")));
        var json = await ReadJsonAsync(response);

        Assert.Equal(" 42, as always.", json.GetProperty("content")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Refusal_and_stop_reason_overrides_use_anthropic_names()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.Enqueue(new UpstreamBehavior { Refusal = "I can't help with that." });
        server.Enqueue(new UpstreamBehavior { StopReason = "stop_sequence" });
        using var http = NewClient(server);

        using var refused = await SendAsync(http, Messages(Body()));
        using var stopped = await SendAsync(http, Messages(Body(extra: b => b["stop_sequences"] = new JsonArray("###"))));
        var refusal = await ReadJsonAsync(refused);
        var stop = await ReadJsonAsync(stopped);

        Assert.Equal("refusal", refusal.GetProperty("stop_reason").GetString());
        Assert.Equal("I can't help with that.", refusal.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("stop_sequence", stop.GetProperty("stop_reason").GetString());
        Assert.Equal("###", stop.GetProperty("stop_sequence").GetString());
    }

    [Fact]
    public async Task Rate_limit_carries_retry_after_and_anthropic_ratelimit_headers()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { StatusCode = 429, RetryAfter = TimeSpan.FromSeconds(7) };
        using var http = NewClient(server);

        var (status, type, _, response) = await ErrorOfAsync(http, Messages(Body()));

        Assert.Equal((HttpStatusCode.TooManyRequests, "rate_limit_error"), (status, type));
        Assert.Equal("7", response.Headers.GetValues("retry-after").Single());
        Assert.Equal("0", response.Headers.GetValues("anthropic-ratelimit-requests-remaining").Single());
        Assert.True(DateTimeOffset.TryParse(response.Headers.GetValues("anthropic-ratelimit-requests-reset").Single(), out _));
        Assert.True(response.Headers.Contains("anthropic-ratelimit-tokens-limit"));
    }

    [Fact]
    public async Task Overloaded_is_529_and_request_too_large_is_413()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.Enqueue(new UpstreamBehavior { StatusCode = 529 });
        server.Enqueue(new UpstreamBehavior { StatusCode = 413 });
        using var http = NewClient(server);

        var overloaded = await ErrorOfAsync(http, Messages(Body()));
        var tooLarge = await ErrorOfAsync(http, Messages(Body()));

        Assert.Equal(((HttpStatusCode)529, "overloaded_error", "Overloaded"), (overloaded.Status, overloaded.Type, overloaded.Message));
        Assert.Equal((HttpStatusCode.RequestEntityTooLarge, "request_too_large"), (tooLarge.Status, tooLarge.Type));
    }

    [Fact]
    public async Task Stream_faults_cut_the_event_sequence_where_asked()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.OmitDone });
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.TruncatedStream, FaultAfterChunks = 1 });
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.MalformedSseEvent, FaultAfterChunks = 0 });
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 1 });
        using var http = NewClient(server);

        async Task<List<SseEvent>> EventsAsync()
        {
            using var response = await SendAsync(http, Messages(Body(stream: true)));
            using var sse = await NamedSseReader.OpenAsync(response);
            return await sse.ReadAllAsync();
        }

        var omitted = await EventsAsync();
        var truncated = await EventsAsync();
        var malformed = await EventsAsync();
        var reset = await Record.ExceptionAsync(EventsAsync);

        Assert.Equal("message_delta", omitted[^1].Name);
        Assert.Equal(["message_start", "content_block_start", "ping", "content_block_delta"], truncated.Select(e => e.Name));
        Assert.Equal(new SseEvent("content_block_delta", "{not json"), malformed[3]);
        Assert.Equal("message_stop", malformed[^1].Name);
        Assert.True(reset is IOException or HttpRequestException, $"unexpected {reset}");
        Assert.Equal(RequestOutcome.ServerFault, await server.Requests[3].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Behaviours_are_chosen_by_the_body_model()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.SetBehaviorForModel("claude-haiku-4-5", new UpstreamBehavior { StatusCode = 503 });
        using var http = NewClient(server);

        var error = await ErrorOfAsync(http, Messages(Body()));
        using var other = await SendAsync(http, Messages(Body(extra: b => b["model"] = "claude-opus-4-1")));

        Assert.Equal((HttpStatusCode.ServiceUnavailable, "api_error"), (error.Status, error.Type));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        Assert.Equal(["claude-haiku-4-5", "claude-opus-4-1"], server.Requests.Select(r => r.Model));
    }
}
