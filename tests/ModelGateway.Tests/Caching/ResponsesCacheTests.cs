using System.Net;
using System.Text;
using System.Text.Json;
using Anthropic.Models.Messages;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Tests.Protocols.Anthropic;
using OpenAI.Chat;
using OpenAI.Responses;

#pragma warning disable OPENAI001 // The SDK marks its Responses client experimental; the wire it speaks is OpenAI's GA API.

namespace ModelGateway.Tests.Caching;

/// <summary>
/// The response cache with Responses API clients, through the real host and the official SDKs: an entry filled
/// through chat completions answers a Responses client (whole and streamed) and one filled through Responses
/// (translated or passed through from OpenAI, whole or streamed) answers chat-completions and Anthropic clients;
/// a replayed Responses answer can be continued with <c>previous_response_id</c>; requests that depend on
/// upstream state bypass the cache; a Responses stream follows a chat-completions stream live.
/// </summary>
public sealed class ResponsesCacheTests : IAsyncLifetime
{
    private const string Answer = "Responses clients share this cached answer too.";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5, PromptTokens = 17, CompletionTokens = 9 };
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: compat, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: openai, kind: openai, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: local, provider: compat, model: qwen3, pricing: { input: 2.5, output: 10 }, capabilities: [chat, tools] }
              - { name: gpt, provider: openai, model: gpt-4.1 }
            routes:
              - { name: cached, targets: [local], cache: { ttl: 10m, scope: global } }
              - { name: cached-oai, targets: [gpt], cache: { ttl: 10m, scope: global } }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static string Prompt() => "Repeat something cacheable " + Guid.NewGuid().ToString("N");

    private ResponsesClient Responses() => _gateway.OpenAI().GetResponsesClient();

    private static CreateResponseOptions Ask(string route, string prompt, bool stream = false)
        => new(route, [ResponseItem.CreateUserMessageItem(prompt)]) { MaxOutputTokenCount = 300, StreamingEnabled = stream };

    private static ChatCompletionOptions ChatOptions() => new() { MaxOutputTokenCount = 300 };

    private static MessageCreateParams AnthropicAsk(string route, string prompt) => new()
    {
        Model = route,
        MaxTokens = 300,
        Messages = [new UserMessageParam(prompt)],
    };

    private sealed record StreamedResponse(string Text, ResponseResult? Completed, List<string> Kinds);

    private async Task<StreamedResponse> StreamResponseAsync(string route, string prompt, TaskCompletionSource? firstDelta = null)
    {
        var text = new StringBuilder();
        ResponseResult? completed = null;
        var kinds = new List<string>();
        await foreach (var update in await Responses().CreateResponseStreamingAsync(Ask(route, prompt, stream: true)))
        {
            kinds.Add(update.GetType().Name);
            switch (update)
            {
                case StreamingResponseOutputTextDeltaUpdate delta:
                    text.Append(delta.Delta);
                    firstDelta?.TrySetResult();
                    break;
                case StreamingResponseCompletedUpdate done:
                    completed = done.Response;
                    break;
            }
        }

        return new StreamedResponse(text.ToString(), completed, kinds);
    }

    private static async Task<string> ChatStreamAsync(ChatClient chat, string prompt, TaskCompletionSource? firstDelta = null)
    {
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(prompt)], ChatOptions()))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
                firstDelta?.TrySetResult();
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.Stop, finish);
        return text.ToString();
    }

    private async Task<(HttpResponseMessage Response, string Body)> RawResponsesAsync(string body)
    {
        var response = await _gateway.PostAsync("v1/responses", body);
        return (response, await response.Content.ReadAsStringAsync());
    }

    private static string? CacheHeader(HttpResponseMessage response)
        => response.Headers.TryGetValues("x-modelgateway-cache", out var values) ? values.Single() : null;

    [Fact]
    public async Task An_answer_filled_through_chat_completions_is_a_hit_for_responses_clients_streamed_and_not()
    {
        var prompt = Prompt();
        var chat = _gateway.OpenAI().GetChatClient("cached");
        ChatCompletion first = await CacheTestRequests.CompletedAsync(_gateway, async () => (ChatCompletion)await chat.CompleteChatAsync([new UserChatMessage(prompt)], ChatOptions()));
        var upstreamCalls = _upstream.RequestCount;

        ResponseResult whole = await Responses().CreateResponseAsync(Ask("cached", prompt));
        var streamed = await StreamResponseAsync("cached", prompt);

        Assert.Equal(Answer, first.Content[0].Text);
        Assert.Equal(Answer, whole.GetOutputText());
        Assert.Equal(ResponseStatus.Completed, whole.Status);
        Assert.StartsWith("resp_", whole.Id, StringComparison.Ordinal);
        Assert.Equal(first.Usage.OutputTokenCount, whole.Usage.OutputTokenCount);
        Assert.Equal(first.Usage.InputTokenCount, whole.Usage.InputTokenCount);
        Assert.Equal(Answer, streamed.Text);
        Assert.True(streamed.Kinds.Count(k => k == nameof(StreamingResponseOutputTextDeltaUpdate)) > 1, "a replayed stream arrives in several deltas");
        Assert.NotNull(streamed.Completed);
        Assert.Equal(Answer, streamed.Completed.GetOutputText());
        Assert.Equal(first.Usage.OutputTokenCount, streamed.Completed.Usage.OutputTokenCount);

        // Each hit is a response of its own, with a fresh id.
        Assert.NotEqual(whole.Id, streamed.Completed.Id);
        Assert.Equal(upstreamCalls, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_hit_served_to_a_responses_client_is_stored_by_the_gateway_so_previous_response_id_continues_it()
    {
        var prompt = Prompt();
        await CacheTestRequests.CompletedAsync(_gateway, async () => await _gateway.OpenAI().GetChatClient("cached").CompleteChatAsync([new UserChatMessage(prompt)], ChatOptions()));
        ResponseResult hit = await Responses().CreateResponseAsync(Ask("cached", prompt));
        var upstreamCalls = _upstream.RequestCount;

        using var stored = await _gateway.Http.GetAsync($"v1/responses/{hit.Id}");
        var (followUp, body) = await RawResponsesAsync(JsonSerializer.Serialize(new { model = "cached", input = "And then?", previous_response_id = hit.Id }));

        Assert.Equal(HttpStatusCode.OK, stored.StatusCode);
        Assert.Contains(Answer, await stored.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.OK, followUp.StatusCode);
        Assert.Equal("bypass", CacheHeader(followUp));
        Assert.Equal(Answer, JsonDocument.Parse(body).RootElement.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString());

        // The follow-up went upstream with the replayed answer as the conversation so far.
        Assert.Equal(upstreamCalls + 1, _upstream.RequestCount);
        var sent = Encoding.UTF8.GetString(_upstream.Requests[^1].Body);
        Assert.Contains(prompt, sent, StringComparison.Ordinal);
        Assert.Contains(Answer, sent, StringComparison.Ordinal);
        Assert.Contains("And then?", sent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_answer_streamed_through_responses_is_a_hit_for_chat_completions_and_anthropic_clients()
    {
        var prompt = Prompt();
        var filled = await CacheTestRequests.CompletedAsync(_gateway, () => StreamResponseAsync("cached", prompt));
        var upstreamCalls = _upstream.RequestCount;

        var chat = _gateway.OpenAI().GetChatClient("cached");
        ChatCompletion whole = await chat.CompleteChatAsync([new UserChatMessage(prompt)], ChatOptions());
        var streamed = await ChatStreamAsync(chat, prompt);
        var anthropic = AnthropicClients.For(_gateway);
        var message = await anthropic.Messages.Create(AnthropicAsk("cached", prompt));
        var anthropicStreamed = await AnthropicClients.StreamAsync(anthropic, AnthropicAsk("cached", prompt));

        Assert.Equal(Answer, filled.Text);
        Assert.Equal(Answer, whole.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, whole.FinishReason);
        Assert.Equal(filled.Completed!.Usage.OutputTokenCount, whole.Usage.OutputTokenCount);
        Assert.Equal(filled.Completed.Usage.InputTokenCount, whole.Usage.InputTokenCount);
        Assert.Equal(Answer, streamed);
        Assert.True(Assert.Single(message.Content).TryPickText(out var text));
        Assert.Equal(Answer, text!.Text);
        Assert.Equal("end_turn", message.StopReason?.Raw());
        Assert.Equal(Answer, anthropicStreamed.Text.ToString());
        Assert.Equal(upstreamCalls, _upstream.RequestCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_responses_answer_passed_through_from_openai_is_stored_and_hits_chat_completions(bool stream)
    {
        var prompt = Prompt();
        var filled = await CacheTestRequests.CompletedAsync(_gateway, async () =>
            stream ? (await StreamResponseAsync("cached-oai", prompt)).Text : ((ResponseResult)await Responses().CreateResponseAsync(Ask("cached-oai", prompt))).GetOutputText());
        Assert.Equal("/v1/responses", _upstream.Requests[^1].Path);
        var upstreamCalls = _upstream.RequestCount;

        var chat = _gateway.OpenAI().GetChatClient("cached-oai");
        var streamed = await ChatStreamAsync(chat, prompt);
        ResponseResult again = await Responses().CreateResponseAsync(Ask("cached-oai", prompt));

        Assert.Equal(Answer, filled);
        Assert.Equal(Answer, streamed);
        Assert.Equal(Answer, again.GetOutputText());
        Assert.Equal(upstreamCalls, _upstream.RequestCount);
    }

    [Theory]
    [InlineData("cached")]
    [InlineData("cached-oai")]
    public async Task Function_calls_streamed_through_responses_are_stored_and_replayed_as_chat_completions_tool_calls(string route)
    {
        var prompt = Prompt();
        _upstream.DefaultBehavior = new UpstreamBehavior
        {
            // The fake's chat-completions wire makes one call (to the first tool); its Responses wire makes both.
            RespondWithToolCall = true,
            ToolCalls = [new("get_weather", """{"location":"Paris","unit":"celsius"}"""), new("get_time", """{"timezone":"Europe/Paris"}""")],
        };
        const string Tools = """[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string"}}}},{"type":"function","name":"get_time","parameters":{"type":"object","properties":{"timezone":{"type":"string"}}}}]""";
        const string ChatTools = """[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string"}}}}},{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"timezone":{"type":"string"}}}}}]""";
        var responsesBody = $$"""{"model":"{{route}}","input":{{JsonSerializer.Serialize(prompt)}},"max_output_tokens":300,"stream":true,"tools":{{Tools}}}""";
        var chatBody = $$"""{"model":"{{route}}","messages":[{"role":"user","content":{{JsonSerializer.Serialize(prompt)}}}],"max_tokens":300,"tools":{{ChatTools}}}""";

        var (filled, stream) = await CacheTestRequests.CompletedAsync(_gateway, () => RawResponsesAsync(responsesBody));
        Assert.Equal(HttpStatusCode.OK, filled.StatusCode);
        Assert.Contains("response.function_call_arguments.delta", stream, StringComparison.Ordinal);
        var upstreamCalls = _upstream.RequestCount;

        using var hit = await _gateway.PostAsync("v1/chat/completions", chatBody);
        var choice = JsonDocument.Parse(await hit.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0];

        Assert.Equal("hit", CacheHeader(hit));
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var calls = choice.GetProperty("message").GetProperty("tool_calls");
        Assert.Equal(route == "cached-oai" ? 2 : 1, calls.GetArrayLength());
        Assert.Equal("get_weather", calls[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("Paris", JsonDocument.Parse(calls[0].GetProperty("function").GetProperty("arguments").GetString()!).RootElement.GetProperty("location").GetString());
        if (route == "cached-oai")
        {
            Assert.Equal("get_time", calls[1].GetProperty("function").GetProperty("name").GetString());
            Assert.Equal("Europe/Paris", JsonDocument.Parse(calls[1].GetProperty("function").GetProperty("arguments").GetString()!).RootElement.GetProperty("timezone").GetString());
        }
        Assert.Equal(upstreamCalls, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_hit_for_a_store_false_responses_request_is_not_kept_for_follow_ups()
    {
        var prompt = Prompt();
        await CacheTestRequests.CompletedAsync(_gateway, async () => await _gateway.OpenAI().GetChatClient("cached").CompleteChatAsync([new UserChatMessage(prompt)], ChatOptions()));
        var (hit, body) = await RawResponsesAsync(JsonSerializer.Serialize(new { model = "cached", input = prompt, max_output_tokens = 300, store = false }));
        var id = JsonDocument.Parse(body).RootElement.GetProperty("id").GetString();

        var (followUp, error) = await RawResponsesAsync(JsonSerializer.Serialize(new { model = "cached", input = "And then?", previous_response_id = id }));

        Assert.Equal("hit", CacheHeader(hit));
        Assert.Equal(HttpStatusCode.BadRequest, followUp.StatusCode);
        Assert.Contains("previous_response_not_found", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"model":"cached","input":"PROMPT","tools":[{"type":"web_search"}]}""")]
    [InlineData("""{"model":"cached","input":[{"type":"item_reference","id":"msg_123"},{"role":"user","content":"PROMPT"}]}""")]
    public async Task Responses_requests_that_depend_on_state_kept_upstream_bypass_the_cache(string template)
    {
        var body = template.Replace("PROMPT", Prompt(), StringComparison.Ordinal);

        var (first, _) = await RawResponsesAsync(body);
        var (second, _) = await RawResponsesAsync(body);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("bypass", CacheHeader(first));
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("bypass", CacheHeader(second));
    }

    [Fact]
    public async Task A_responses_stream_follows_an_identical_chat_completions_stream_live_on_one_upstream_call()
    {
        var prompt = Prompt();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5, HoldBeforeLastChunk = release.Task };
        var before = _upstream.RequestCount;

        var leaderFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var leader = ChatStreamAsync(_gateway.OpenAI().GetChatClient("cached"), prompt, leaderFirst);
        await leaderFirst.Task.WaitAsync(Patience);
        var followerFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var follower = StreamResponseAsync("cached", prompt, followerFirst);
        await followerFirst.Task.WaitAsync(Patience);

        Assert.False(release.Task.IsCompleted);
        release.SetResult();
        var leaderText = await leader.WaitAsync(Patience);
        var followed = await follower.WaitAsync(Patience);

        Assert.Equal(before + 1, _upstream.RequestCount);
        Assert.Equal(Answer, leaderText);
        Assert.Equal(Answer, followed.Text);
        Assert.NotNull(followed.Completed);
        Assert.Equal(ResponseStatus.Completed, followed.Completed.Status);
        Assert.Equal(Answer, followed.Completed.GetOutputText());
    }

    [Fact]
    public async Task A_chat_completions_stream_follows_an_identical_responses_stream_live_on_one_upstream_call()
    {
        var prompt = Prompt();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5, HoldBeforeLastChunk = release.Task };
        var before = _upstream.RequestCount;

        var leaderFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var leader = StreamResponseAsync("cached", prompt, leaderFirst);
        await leaderFirst.Task.WaitAsync(Patience);
        var followerFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var follower = ChatStreamAsync(_gateway.OpenAI().GetChatClient("cached"), prompt, followerFirst);
        await followerFirst.Task.WaitAsync(Patience);

        Assert.False(release.Task.IsCompleted);
        release.SetResult();
        var led = await leader.WaitAsync(Patience);
        var followerText = await follower.WaitAsync(Patience);

        Assert.Equal(before + 1, _upstream.RequestCount);
        Assert.Equal(Answer, led.Text);
        Assert.Equal(Answer, followerText);
    }
}
