using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>The official OpenAI SDK accepts everything the fake sends, which is the proof that the wire format is exact.</summary>
public sealed class FakeUpstreamSdkTests
{
    private const string Key = "sk-test-key-0001";

    private static OpenAIClientOptions ClientOptions(FakeUpstreamServer server) => new()
    {
        Endpoint = new Uri(server.OpenAIBaseUrl),
        RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
    };

    private static ChatClient Chat(FakeUpstreamServer server, string model = "gpt-4o", string key = Key) =>
        new(model, new ApiKeyCredential(key), ClientOptions(server));

    private static ChatTool WeatherTool() => ChatTool.CreateFunctionTool(
        "get_weather",
        "Current weather for a city",
        BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}"""));

    [Fact]
    public async Task Sdk_parses_a_chat_completion_with_content_and_usage()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = Key });
        server.DefaultBehavior = new UpstreamBehavior { CachedTokens = 3 };

        ChatCompletion completion = await Chat(server).CompleteChatAsync([new UserChatMessage("12345678")]);

        Assert.Equal("Hello from gpt-4o. This reply is streamed in pieces.", completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal("gpt-4o", completion.Model);
        Assert.Equal("fp_fake0001", completion.SystemFingerprint);
        Assert.Matches("^chatcmpl-[A-Za-z0-9]{29}$", completion.Id);
        Assert.Equal(2, completion.Usage.InputTokenCount); // 8 characters / 4
        Assert.Equal(5, completion.Usage.OutputTokenCount); // one per chunk
        Assert.Equal(7, completion.Usage.TotalTokenCount);
        Assert.Equal(3, completion.Usage.InputTokenDetails.CachedTokenCount);
        Assert.InRange(completion.CreatedAt, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1));

        var recorded = Assert.Single(server.Requests);
        Assert.Equal("Bearer " + Key, recorded.Headers["authorization"]);
        Assert.Equal("/v1/chat/completions", recorded.Path);
        Assert.Equal("gpt-4o", recorded.Model);
    }

    [Fact]
    public async Task Sdk_assembles_a_streamed_reply_and_its_usage()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Content = "One two three four five six seven.", ChunkCount = 3 };

        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        var updates = 0;
        await foreach (var update in Chat(server).CompleteChatStreamingAsync([new UserChatMessage("hi")]))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal("One two three four five six seven.", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        var body = Assert.Single(server.Requests).Json!;
        Assert.True(body["stream"]!.GetValue<bool>());
        // The SDK asks for usage on every stream; the fake then ends with a usage-only chunk.
        Assert.True(body["stream_options"]!["include_usage"]!.GetValue<bool>());
        Assert.NotNull(usage);
        Assert.Equal(3, usage.OutputTokenCount);
        Assert.Equal(1 + 3 + 1 + 1, updates); // role, three pieces, finish, usage
    }

    [Fact]
    public async Task Sdk_assembles_a_streamed_reply_without_usage()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        var options = ClientOptions(server);
        options.AddPolicy(new DropStreamOptionsPolicy(), PipelinePosition.PerCall);
        var client = new ChatClient("gpt-4o", new ApiKeyCredential(Key), options);

        var text = new StringBuilder();
        var sawUsage = false;
        ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("hi")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            sawUsage |= update.Usage is not null;
            finish ??= update.FinishReason;
        }

        Assert.Null(Assert.Single(server.Requests).Json!["stream_options"]);
        Assert.Equal("Hello from gpt-4o. This reply is streamed in pieces.", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.False(sawUsage);
    }

    [Fact]
    public async Task Sdk_reads_a_tool_call_with_its_arguments()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { RespondWithToolCall = true, ToolArguments = """{"location":"Paris","unit":"celsius"}""" };
        var options = new ChatCompletionOptions { Tools = { WeatherTool() } };

        ChatCompletion completion = await Chat(server).CompleteChatAsync([new UserChatMessage("Weather in Paris?")], options);

        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Matches("^call_[A-Za-z0-9]{24}$", call.Id);
        Assert.Equal("""{"location":"Paris","unit":"celsius"}""", call.FunctionArguments.ToString());
        Assert.Empty(completion.Content);
    }

    [Fact]
    public async Task Sdk_assembles_a_streamed_tool_call_from_argument_fragments()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { RespondWithToolCall = true, ChunkCount = 4 };
        var options = new ChatCompletionOptions { Tools = { WeatherTool() } };

        string? name = null;
        string? id = null;
        var arguments = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat(server).CompleteChatStreamingAsync([new UserChatMessage("Weather?")], options))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                Assert.Equal(0, call.Index);
                name ??= call.FunctionName;
                id ??= call.ToolCallId;
                arguments.Append(call.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal("get_weather", name);
        Assert.StartsWith("call_", id, StringComparison.Ordinal);
        Assert.Equal("""{"location":"Paris"}""", arguments.ToString());
        Assert.Equal(ChatFinishReason.ToolCalls, finish);
    }

    [Fact]
    public async Task Sdk_reads_a_refusal()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Refusal = "I can't help with that." };

        ChatCompletion completion = await Chat(server).CompleteChatAsync([new UserChatMessage("hi")]);

        Assert.Equal("I can't help with that.", completion.Refusal);
        Assert.Empty(completion.Content);
    }

    [Fact]
    public async Task Sdk_sees_a_401_for_a_wrong_key()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = Key });

        var error = await Assert.ThrowsAsync<ClientResultException>(() => Chat(server, key: "sk-wrong-key-9999").CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(401, error.Status);
        Assert.Contains("Incorrect API key provided", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sdk_decodes_deterministic_unit_length_embeddings()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        var client = new EmbeddingClient("text-embedding-3-small", new ApiKeyCredential(Key), ClientOptions(server));

        OpenAIEmbeddingCollection batch = await client.GenerateEmbeddingsAsync(["alpha", "beta", "alpha"]);
        OpenAIEmbedding wide = await client.GenerateEmbeddingAsync("alpha", new EmbeddingGenerationOptions { Dimensions = 16 });

        Assert.Equal(3, batch.Count);
        Assert.Equal([0, 1, 2], batch.Select(e => e.Index));
        var alpha = batch[0].ToFloats().ToArray();
        Assert.Equal(8, alpha.Length);
        Assert.Equal(alpha, batch[2].ToFloats().ToArray());
        Assert.NotEqual(alpha, batch[1].ToFloats().ToArray());
        Assert.Equal(1.0, Math.Sqrt(alpha.Sum(v => (double)v * v)), 5);
        Assert.Equal(16, wide.ToFloats().Length);
        Assert.Equal("text-embedding-3-small", batch.Model);
        Assert.Equal(2 + 1 + 2, batch.Usage.InputTokenCount); // ceil(chars / 4) per input
        // The SDK asks for base64; the fake must honour it for the floats above to decode.
        Assert.Equal("base64", server.Requests[0].Json!["encoding_format"]!.GetValue<string>());
    }

    /// <summary>The SDK always asks for stream usage; this takes the request back to a plain <c>"stream": true</c>.</summary>
    private sealed class DropStreamOptionsPolicy : PipelinePolicy
    {
        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            Rewrite(message);
            ProcessNext(message, pipeline, currentIndex);
        }

        public override ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            Rewrite(message);
            return ProcessNextAsync(message, pipeline, currentIndex);
        }

        private static void Rewrite(PipelineMessage message)
        {
            if (message.Request.Content is not { } content)
            {
                return;
            }

            using var buffer = new MemoryStream();
            content.WriteTo(buffer);
            var json = JsonNode.Parse(buffer.ToArray())!.AsObject();
            json.Remove("stream_options");
            message.Request.Content = BinaryContent.Create(BinaryData.FromString(json.ToJsonString()));
        }
    }
}
