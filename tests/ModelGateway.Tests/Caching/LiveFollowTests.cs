using System.Net;
using System.Text;
using System.Text.Json;
using Anthropic.Models.Messages;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Tests.Protocols.Anthropic;
using OpenAI.Chat;

namespace ModelGateway.Tests.Caching;

/// <summary>
/// Identical streamed requests in flight together share one upstream call and follow it live: through the
/// real host, with the official OpenAI and Anthropic SDKs and raw HTTP where the wire itself is checked. The
/// fake upstream holds its last chunk until the test releases it, so a follower that already has the first
/// piece of the answer proves it is following the stream, not waiting for the whole answer.
/// </summary>
public sealed class LiveFollowTests : IAsyncLifetime
{
    private const string Answer = "Followers read this answer while it is still being written.";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5 };
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: openai, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: gpt, provider: openai, model: gpt-4o, pricing: { input: 2.5, output: 10 } }
            routes:
              - { name: cached, targets: [gpt], cache: { ttl: 10m, scope: global } }
              - { name: cached-once, targets: [gpt], cache: { ttl: 10m, scope: global }, resilience: { maxAttempts: 1 } }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static string Prompt() => "Say something worth repeating " + Guid.NewGuid().ToString("N");

    private static ChatCompletionOptions Options() => new() { MaxOutputTokenCount = 300 };

    private static MessageCreateParams Ask(string prompt) => new()
    {
        Model = "cached",
        MaxTokens = 300,
        Messages = [new UserMessageParam(prompt)],
    };

    private static TaskCompletionSource Signal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static async Task<(string Text, ChatFinishReason? Finish)> OpenAIStreamAsync(ChatClient chat, string prompt, TaskCompletionSource firstDelta)
    {
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(prompt)], Options()))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
                firstDelta.TrySetResult();
            }

            finish ??= update.FinishReason;
        }

        return (text.ToString(), finish);
    }

    private static async Task<StreamedMessage> AnthropicStreamAsync(Anthropic.AnthropicClient client, string prompt, TaskCompletionSource firstDelta)
    {
        var message = new StreamedMessage();
        await foreach (var e in client.Messages.CreateStreaming(Ask(prompt)))
        {
            if (e.TryPickContentBlockDelta(out var delta) && delta!.Delta.TryPickText(out var text))
            {
                message.Text.Append(text!.Text);
                firstDelta.TrySetResult();
            }
            else if (e.TryPickDelta(out var messageDelta))
            {
                message.StopReason = messageDelta!.Delta.StopReason?.Raw();
            }
            else if (e.TryPickStop(out _))
            {
                message.Kinds.Add("message_stop");
            }
        }

        return message;
    }

    /// <summary>A raw chat-completions stream: its text, whether it ended with <c>[DONE]</c>, and any in-stream error.</summary>
    private sealed record RawStream(string CacheHeader, string Text, bool Done, string? Error);

    private async Task<RawStream> RawStreamAsync(string prompt, TaskCompletionSource firstDelta, CancellationToken cancellationToken = default, string route = "cached")
    {
        var body = JsonSerializer.Serialize(new { model = route, messages = new[] { new { role = "user", content = prompt } }, max_tokens = 300, stream = true });
        using var response = await _gateway.PostAsync("v1/chat/completions", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var cache = response.Headers.TryGetValues("x-modelgateway-cache", out var values) ? values.Single() : string.Empty;
        var text = new StringBuilder();
        var done = false;
        string? error = null;
        try
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (line == "data: [DONE]")
                {
                    done = true;
                }
                else if (line.StartsWith("data: {", StringComparison.Ordinal))
                {
                    var chunk = JsonDocument.Parse(line["data: ".Length..]).RootElement;
                    if (chunk.TryGetProperty("error", out var failure))
                    {
                        error = failure.GetProperty("message").GetString();
                        continue;
                    }

                    foreach (var choice in chunk.GetProperty("choices").EnumerateArray())
                    {
                        if (choice.GetProperty("delta").TryGetProperty("content", out var content) && content.GetString() is { Length: > 0 } piece)
                        {
                            text.Append(piece);
                            firstDelta.TrySetResult();
                        }
                    }
                }
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
        {
            // The gateway aborts a broken stream after its error event (or this client hung up): the end is part of the answer.
        }

        return new RawStream(cache, text.ToString(), done, error);
    }

    [Fact]
    public async Task Identical_streams_follow_the_first_one_live_in_their_own_formats_on_one_upstream_call()
    {
        var prompt = Prompt();
        var release = Signal();
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5, HoldBeforeLastChunk = release.Task };
        var before = _upstream.RequestCount;

        var leaderFirst = Signal();
        var leader = OpenAIStreamAsync(_gateway.OpenAI().GetChatClient("cached"), prompt, leaderFirst);
        await leaderFirst.Task.WaitAsync(Patience);

        // Both join mid-flight: they get what was produced so far, then each piece as it comes.
        var rawFirst = Signal();
        var anthropicFirst = Signal();
        var raw = RawStreamAsync(prompt, rawFirst);
        var anthropic = AnthropicStreamAsync(AnthropicClients.For(_gateway), prompt, anthropicFirst);
        await Task.WhenAll(rawFirst.Task, anthropicFirst.Task).WaitAsync(Patience);

        Assert.False(release.Task.IsCompleted);
        release.SetResult();
        var (leaderText, leaderFinish) = await leader.WaitAsync(Patience);
        var rawAnswer = await raw.WaitAsync(Patience);
        var anthropicAnswer = await anthropic.WaitAsync(Patience);

        Assert.Equal(before + 1, _upstream.RequestCount);
        Assert.Equal(Answer, leaderText);
        Assert.Equal(ChatFinishReason.Stop, leaderFinish);
        Assert.Equal("hit", rawAnswer.CacheHeader);
        Assert.Equal(Answer, rawAnswer.Text);
        Assert.True(rawAnswer.Done);
        Assert.Null(rawAnswer.Error);
        Assert.Equal(Answer, anthropicAnswer.Text.ToString());
        Assert.Equal("end_turn", anthropicAnswer.StopReason);
        Assert.Contains("message_stop", anthropicAnswer.Kinds);

        // The whole answer was stored: the next identical request is a hit with no upstream call.
        var again = await RawStreamAsync(prompt, Signal());
        Assert.Equal("hit", again.CacheHeader);
        Assert.Equal(Answer, again.Text);
        Assert.Equal(before + 1, _upstream.RequestCount);
    }

    [Fact]
    public async Task The_first_requests_client_leaving_mid_stream_does_not_break_its_followers()
    {
        var prompt = Prompt();
        var release = Signal();
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5, HoldBeforeLastChunk = release.Task };
        var before = _upstream.RequestCount;

        using var leaving = new CancellationTokenSource();
        var leaderFirst = Signal();
        var leader = RawStreamAsync(prompt, leaderFirst, leaving.Token);
        await leaderFirst.Task.WaitAsync(Patience);

        var chatFirst = Signal();
        var anthropicFirst = Signal();
        var chat = OpenAIStreamAsync(_gateway.OpenAI().GetChatClient("cached"), prompt, chatFirst);
        var anthropic = AnthropicStreamAsync(AnthropicClients.For(_gateway), prompt, anthropicFirst);
        await Task.WhenAll(chatFirst.Task, anthropicFirst.Task).WaitAsync(Patience);

        // The first client hangs up; the gateway sees its connection close before the upstream goes on.
        await leaving.CancelAsync();
        var gone = await leader.WaitAsync(Patience);
        Assert.False(gone.Done);

        // Loopback: the server sees the closed connection at once; a moment later the upstream is let go on.
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        release.SetResult();

        var (chatText, chatFinish) = await chat.WaitAsync(Patience);
        var anthropicAnswer = await anthropic.WaitAsync(Patience);
        Assert.Equal(Answer, chatText);
        Assert.Equal(ChatFinishReason.Stop, chatFinish);
        Assert.Equal(Answer, anthropicAnswer.Text.ToString());
        Assert.Equal("end_turn", anthropicAnswer.StopReason);
        Assert.Equal(before + 1, _upstream.RequestCount);

        // The call went on to its end for the followers, so the whole answer was stored too.
        var again = await RawStreamAsync(prompt, Signal());
        Assert.Equal("hit", again.CacheHeader);
        Assert.Equal(Answer, again.Text);
        Assert.Equal(before + 1, _upstream.RequestCount);
    }

    [Fact]
    public async Task An_upstream_break_mid_stream_ends_every_follower_in_an_error_and_nothing_is_stored()
    {
        var prompt = Prompt();
        var release = Signal();

        // The last content chunk goes out after the release, then the upstream resets instead of finishing.
        _upstream.DefaultBehavior = new UpstreamBehavior
        {
            Content = Answer,
            ChunkCount = 5,
            HoldBeforeLastChunk = release.Task,
            Fault = UpstreamFault.ResetAfterChunks,
            FaultAfterChunks = 5,
        };
        var before = _upstream.RequestCount;

        var leaderFirst = Signal();
        var leader = RawStreamAsync(prompt, leaderFirst);
        await leaderFirst.Task.WaitAsync(Patience);

        var rawFirst = Signal();
        var chatFirst = Signal();
        var raw = RawStreamAsync(prompt, rawFirst);
        var chat = OpenAIStreamAsync(_gateway.OpenAI().GetChatClient("cached"), prompt, chatFirst);
        await Task.WhenAll(rawFirst.Task, chatFirst.Task).WaitAsync(Patience);
        release.SetResult();

        var leaderAnswer = await leader.WaitAsync(Patience);
        var rawAnswer = await raw.WaitAsync(Patience);
        await Assert.ThrowsAnyAsync<Exception>(() => chat.WaitAsync(Patience));

        Assert.False(leaderAnswer.Done);
        Assert.False(rawAnswer.Done);
        Assert.NotNull(rawAnswer.Error);
        Assert.Equal(before + 1, _upstream.RequestCount);

        // Nothing was stored: the next identical request goes upstream and gets the whole answer.
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5 };
        var fresh = await RawStreamAsync(prompt, Signal());
        Assert.Equal("miss", fresh.CacheHeader);
        Assert.Equal(Answer, fresh.Text);
        Assert.True(fresh.Done);
        Assert.Equal(before + 2, _upstream.RequestCount);
    }

    [Fact]
    public async Task A_follower_that_got_nothing_before_the_first_request_failed_makes_its_own_call_and_gets_the_whole_answer()
    {
        var prompt = Prompt();

        // The first upstream call fails after a while, with no failover (maxAttempts: 1); later ones answer.
        _upstream.Enqueue("gpt-4o", new UpstreamBehavior { StatusCode = 500, HeaderDelay = TimeSpan.FromSeconds(2) });
        var before = _upstream.RequestCount;
        var chat = _gateway.OpenAI().GetChatClient("cached-once");
        var leader = OpenAIStreamAsync(chat, prompt, Signal());
        while (_upstream.RequestCount == before)
        {
            await Task.Delay(10);
        }

        var follower = RawStreamAsync(prompt, Signal(), route: "cached-once");
        await Task.Delay(TimeSpan.FromMilliseconds(500));

        // While the first call is out, the follower waits on it instead of calling upstream itself.
        Assert.Equal(before + 1, _upstream.RequestCount);
        await Assert.ThrowsAnyAsync<Exception>(() => leader.WaitAsync(Patience));
        var answer = await follower.WaitAsync(Patience);

        Assert.Equal(Answer, answer.Text);
        Assert.True(answer.Done);
        Assert.Null(answer.Error);
        Assert.Equal(before + 2, _upstream.RequestCount);
    }
}
