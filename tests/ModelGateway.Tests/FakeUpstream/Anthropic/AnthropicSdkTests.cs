using System.Text;
using System.Text.Json;
using Anthropic;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using ModelGateway.FakeUpstream;

namespace ModelGateway.Tests.FakeUpstream.Anthropic;

/// <summary>The official Anthropic C# SDK accepts everything the fake's Messages API sends: the proof that the wire is exact.</summary>
public sealed class AnthropicSdkTests
{
    private const string Key = "sk-ant-test-0001";
    private const string Model = "claude-sonnet-4-5";

    private static AnthropicClient Client(FakeUpstreamServer server, string key = Key) => new()
    {
        BaseUrl = server.AnthropicBaseUrl,
        ApiKey = key,
        MaxRetries = 0,
    };

    private static MessageCreateParams Ask(string prompt = "Say hello", long maxTokens = 1024) => new()
    {
        Model = Model,
        MaxTokens = maxTokens,
        Messages = [new UserMessageParam(prompt)],
    };

    private static Tool WeatherTool(string name = "get_weather") => new()
    {
        Name = name,
        Description = "Current weather for a city",
        InputSchema = new InputSchema
        {
            Properties = new Dictionary<string, JsonElement>
            {
                ["location"] = JsonSerializer.SerializeToElement(new { type = "string" }),
            },
            Required = ["location"],
        },
    };

    [Fact]
    public async Task Sdk_reads_a_message_with_its_usage_and_cache_counts()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = Key });
        server.DefaultBehavior = new UpstreamBehavior { CachedTokens = 7, CacheWriteTokens = 11 };

        var message = await Client(server).Messages.Create(Ask("12345678"));

        var text = Assert.Single(message.Content);
        Assert.True(text.TryPickText(out var block));
        Assert.Equal("Hello from claude-sonnet-4-5. This reply is streamed in pieces.", block!.Text);
        Assert.Equal("end_turn", message.StopReason?.Raw());
        Assert.Matches("^msg_01[A-Za-z0-9]{22}$", message.ID);
        Assert.Equal(2, message.Usage.InputTokens); // 8 characters / 4
        Assert.Equal(5, message.Usage.OutputTokens); // one per piece
        Assert.Equal(7, message.Usage.CacheReadInputTokens);
        Assert.Equal(11, message.Usage.CacheCreationInputTokens);

        var recorded = Assert.Single(server.Requests);
        Assert.Equal(UpstreamWire.Anthropic, recorded.Wire);
        Assert.Equal(Model, recorded.Model);
        Assert.Equal("/v1/messages", recorded.Path);
        Assert.Equal("2026-10-21", recorded.Headers["anthropic-version"]);
    }

    [Fact]
    public async Task Sdk_stream_events_come_in_anthropic_order_and_assemble_the_text()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Content = "One two three four five six.", ChunkCount = 3 };

        var kinds = new List<string>();
        var text = new StringBuilder();
        string? stop = null;
        long? outputTokens = null;
        await foreach (var streamEvent in Client(server).Messages.CreateStreaming(Ask()))
        {
            if (streamEvent.TryPickStart(out var start))
            {
                kinds.Add("message_start");
                Assert.Equal(Model, (string)start!.Message.Model);
            }
            else if (streamEvent.TryPickContentBlockStart(out _))
            {
                kinds.Add("content_block_start");
            }
            else if (streamEvent.TryPickContentBlockDelta(out var delta))
            {
                kinds.Add("content_block_delta");
                Assert.True(delta!.Delta.TryPickText(out var piece));
                text.Append(piece!.Text);
            }
            else if (streamEvent.TryPickContentBlockStop(out _))
            {
                kinds.Add("content_block_stop");
            }
            else if (streamEvent.TryPickDelta(out var messageDelta))
            {
                kinds.Add("message_delta");
                stop = messageDelta!.Delta.StopReason?.Raw();
                outputTokens = messageDelta.Usage.OutputTokens;
            }
            else if (streamEvent.TryPickStop(out _))
            {
                kinds.Add("message_stop");
            }
        }

        Assert.Equal("One two three four five six.", text.ToString());
        Assert.Equal(
            ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
            kinds);
        Assert.Equal("end_turn", stop);
        Assert.Equal(3, outputTokens);
        Assert.True(Assert.Single(server.Requests).Json!["stream"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Sdk_reads_parallel_tool_use_blocks()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior
        {
            Content = "Let me check both cities.",
            ToolCalls = [new("get_weather", """{"location":"Paris"}"""), new("get_time", """{"location":"Tokyo","format":"24h"}""")],
        };
        var ask = Ask("Weather in Paris and time in Tokyo?") with { Tools = [WeatherTool(), WeatherTool("get_time")] };

        var message = await Client(server).Messages.Create(ask);

        Assert.Equal("tool_use", message.StopReason?.Raw());
        Assert.Equal(3, message.Content.Count);
        Assert.True(message.Content[0].TryPickText(out var text));
        Assert.Equal("Let me check both cities.", text!.Text);
        Assert.True(message.Content[1].TryPickToolUse(out var first));
        Assert.True(message.Content[2].TryPickToolUse(out var second));
        Assert.Equal("get_weather", first!.Name);
        Assert.Equal("Paris", first.Input["location"].GetString());
        Assert.Equal("get_time", second!.Name);
        Assert.Equal("24h", second.Input["format"].GetString());
        Assert.Matches("^toolu_01[A-Za-z0-9]{22}$", first.ID);
        Assert.NotEqual(first.ID, second.ID);
    }

    [Fact]
    public async Task Sdk_assembles_streamed_tool_input_from_partial_json()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior
        {
            ChunkCount = 4,
            ToolCalls = [new("get_weather", """{"location":"Paris","unit":"celsius"}"""), new("get_weather", """{"location":"Rome"}""")],
        };
        var ask = Ask("Weather in Paris and Rome?") with { Tools = [WeatherTool()] };

        var inputs = new Dictionary<long, StringBuilder>();
        var fragments = 0;
        var starts = new List<string>();
        string? stop = null;
        await foreach (var streamEvent in Client(server).Messages.CreateStreaming(ask))
        {
            if (streamEvent.TryPickContentBlockStart(out var start) && start!.ContentBlock.TryPickToolUse(out var toolUse))
            {
                starts.Add(toolUse!.Name);
                inputs[start.Index] = new StringBuilder();
            }
            else if (streamEvent.TryPickContentBlockDelta(out var delta) && delta!.Delta.TryPickInputJson(out var json))
            {
                fragments++;
                inputs[delta.Index].Append(json!.PartialJson);
            }
            else if (streamEvent.TryPickDelta(out var messageDelta))
            {
                stop = messageDelta!.Delta.StopReason?.Raw();
            }
        }

        Assert.Equal(["get_weather", "get_weather"], starts);
        Assert.Equal("""{"location":"Paris","unit":"celsius"}""", inputs[0].ToString());
        Assert.Equal("""{"location":"Rome"}""", inputs[1].ToString());
        Assert.True(fragments >= 6, $"only {fragments} input_json_delta fragments");
        Assert.Equal("tool_use", stop);
    }

    [Fact]
    public async Task Sdk_reads_a_signed_thinking_block_before_the_text()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Thinking = "The user greets me; I greet back." };
        var ask = Ask() with { Thinking = new ThinkingConfigEnabled(2048) };

        var message = await Client(server).Messages.Create(ask);
        var thinking = new StringBuilder();
        string? signature = null;
        var streamedText = new StringBuilder();
        await foreach (var streamEvent in Client(server).Messages.CreateStreaming(ask))
        {
            if (streamEvent.TryPickContentBlockDelta(out var delta))
            {
                if (delta!.Delta.TryPickThinking(out var piece))
                {
                    Assert.Equal(0, streamedText.Length);
                    thinking.Append(piece!.Thinking);
                }
                else if (delta.Delta.TryPickSignature(out var signed))
                {
                    signature = signed!.Signature;
                }
                else if (delta.Delta.TryPickText(out var text))
                {
                    Assert.NotNull(signature);
                    streamedText.Append(text!.Text);
                }
            }
        }

        Assert.Equal(2, message.Content.Count);
        Assert.True(message.Content[0].TryPickThinking(out var block));
        Assert.Equal("The user greets me; I greet back.", block!.Thinking);
        Assert.False(string.IsNullOrEmpty(block.Signature));
        Assert.True(message.Content[1].TryPickText(out _));
        Assert.Equal("The user greets me; I greet back.", thinking.ToString());
        Assert.False(string.IsNullOrEmpty(signature));
        Assert.Equal("Hello from claude-sonnet-4-5. This reply is streamed in pieces.", streamedText.ToString());
    }

    [Fact]
    public async Task Sdk_counts_tokens()
    {
        await using var server = await FakeUpstreamServer.StartAsync();

        var count = await Client(server).Messages.CountTokens(new MessageCountTokensParams
        {
            Model = Model,
            Messages = [new UserMessageParam("1234567890123456")],
        });

        Assert.Equal(4, count.InputTokens);
        Assert.Equal("/v1/messages/count_tokens", Assert.Single(server.Requests).Path);
    }

    [Fact]
    public async Task Sdk_sees_a_short_max_tokens_as_a_max_tokens_stop()
    {
        await using var server = await FakeUpstreamServer.StartAsync();

        var message = await Client(server).Messages.Create(Ask(maxTokens: 2));

        Assert.Equal("max_tokens", message.StopReason?.Raw());
        Assert.True(Assert.Single(message.Content).TryPickText(out var text));
        Assert.Equal("Hello from claude-sonnet-4-5. ", text!.Text); // the first two of five pieces
        Assert.Equal(2, message.Usage.OutputTokens);
    }

    [Fact]
    public async Task Sdk_raises_typed_exceptions_with_anthropic_statuses()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = Key });
        var client = Client(server);

        var unauthorized = await Assert.ThrowsAsync<AnthropicUnauthorizedException>(() => Client(server, "sk-ant-wrong").Messages.Create(Ask()));
        Assert.Contains("authentication_error", unauthorized.Message, StringComparison.Ordinal);

        server.Enqueue(new UpstreamBehavior { StatusCode = 429, RetryAfter = TimeSpan.FromSeconds(3) });
        var limited = await Assert.ThrowsAsync<AnthropicRateLimitException>(() => client.Messages.Create(Ask()));
        Assert.Contains("rate_limit_error", limited.Message, StringComparison.Ordinal);
        Assert.StartsWith("req_", limited.RequestID, StringComparison.Ordinal);

        server.Enqueue(new UpstreamBehavior { StatusCode = 529 });
        var overloaded = await Assert.ThrowsAsync<AnthropicOverloadedException>(() => client.Messages.Create(Ask()));
        Assert.Contains("overloaded_error", overloaded.Message, StringComparison.Ordinal);

        server.Enqueue(new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded" });
        var tooLong = await Assert.ThrowsAsync<AnthropicBadRequestException>(() => client.Messages.Create(Ask()));
        Assert.Contains("prompt is too long: 210000 tokens > 200000 maximum", tooLong.Message, StringComparison.Ordinal);

        server.Enqueue(new UpstreamBehavior { StatusCode = 404 });
        await Assert.ThrowsAsync<AnthropicNotFoundException>(() => client.Messages.Create(Ask()));

        server.Enqueue(new UpstreamBehavior { StatusCode = 403 });
        await Assert.ThrowsAsync<AnthropicForbiddenException>(() => client.Messages.Create(Ask()));

        server.Enqueue(new UpstreamBehavior { StatusCode = 500 });
        await Assert.ThrowsAsync<Anthropic5xxException>(() => client.Messages.Create(Ask()));
    }

    [Fact]
    public async Task Sdk_fails_a_stream_that_carries_an_error_event()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.ErrorEvent, FaultAfterChunks = 2 };

        var text = new StringBuilder();
        var error = await Record.ExceptionAsync(async () =>
        {
            await foreach (var streamEvent in Client(server).Messages.CreateStreaming(Ask()))
            {
                if (streamEvent.TryPickContentBlockDelta(out var delta) && delta!.Delta.TryPickText(out var piece))
                {
                    text.Append(piece!.Text);
                }
            }
        });

        Assert.NotNull(error);
        Assert.Contains("overloaded_error", error.ToString(), StringComparison.Ordinal);
        Assert.Equal("Hello from claude-sonnet-4-5. ", text.ToString());
    }
}
