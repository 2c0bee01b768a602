using System.ClientModel;
using System.Text;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Chat;
using OpenAI.Embeddings;
using OpenAI.Models;

namespace ModelGateway.Tests.Forwarding;

/// <summary>An unmodified official OpenAI .NET SDK pointed at the gateway works as if it talked to OpenAI.</summary>
public sealed class OpenAISdkTests : IAsyncLifetime
{
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _gateway = await GatewayHost.StartAsync(TestConfigs.SingleOpenAI(_upstream, extraRoute: """
              - name: text-embedding-3-small
                targets: [primary]
            """));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private ChatClient Chat(string model = "gpt-4o-mini") => _gateway.OpenAI().GetChatClient(model);

    [Fact]
    public async Task Chat_completion_comes_back_as_the_upstream_wrote_it()
    {
        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Hello")]);

        Assert.Equal("Hello from gpt-4o-mini-2024-07-18. This reply is streamed in pieces.", completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal("gpt-4o-mini-2024-07-18", completion.Model);
        Assert.True(completion.Usage.TotalTokenCount > 0);
    }

    [Fact]
    public async Task Streamed_chat_arrives_whole_with_usage()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "One two three four five six.", ChunkCount = 4 };
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;

        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Count")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal("One two three four five six.", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.Equal(4, usage.OutputTokenCount);
    }

    [Fact]
    public async Task Tool_calls_pass_through_both_ways()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { RespondWithToolCall = true, ToolArguments = """{"location":"Lyon"}""" };
        var tool = ChatTool.CreateFunctionTool("get_weather", "Weather for a city",
            BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}"""));

        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Weather in Lyon?")], new ChatCompletionOptions { Tools = { tool } });

        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("""{"location":"Lyon"}""", call.FunctionArguments.ToString());
        var sent = Assert.Single(_upstream.Requests).Json!;
        Assert.Equal("get_weather", sent["tools"]![0]!["function"]!["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task Embeddings_are_forwarded()
    {
        var client = _gateway.OpenAI().GetEmbeddingClient("text-embedding-3-small");

        OpenAIEmbeddingCollection embeddings = await client.GenerateEmbeddingsAsync(["alpha", "beta"]);

        Assert.Equal(2, embeddings.Count);
        Assert.Equal(8, embeddings[0].ToFloats().Length);
        Assert.Equal("/v1/embeddings", Assert.Single(_upstream.Requests).Path);
    }

    [Fact]
    public async Task Models_list_names_the_routes_with_context_and_capabilities()
    {
        var client = _gateway.OpenAI().GetOpenAIModelClient();

        OpenAIModelCollection models = await client.GetModelsAsync();
        OpenAIModel model = await client.GetModelAsync("gpt-4o-mini");

        Assert.Contains(models, m => m.Id == "gpt-4o-mini");
        Assert.Contains(models, m => m.Id == "auto");
        Assert.Equal("gpt-4o-mini", model.Id);
        Assert.Equal("modelgateway", model.OwnedBy);

        using var raw = await _gateway.Http.GetAsync("v1/models/gpt-4o-mini");
        var json = await raw.Content.ReadAsStringAsync();
        Assert.Contains("\"context_window\":128000", json, StringComparison.Ordinal);
        Assert.Contains("\"tools\"", json, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_model_is_a_404_the_sdk_understands()
    {
        var error = await Assert.ThrowsAsync<ClientResultException>(() => Chat("no-such-model").CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(404, error.Status);
        Assert.Contains("no-such-model", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, _upstream.RequestCount);
    }

    [Fact]
    public async Task Upstream_client_errors_reach_the_sdk_in_openai_shape()
    {
        _upstream.Enqueue(new UpstreamBehavior { StatusCode = 400, ErrorMessage = "Invalid value for 'temperature'.", ErrorCode = "invalid_value", ErrorParam = "temperature" });

        var error = await Assert.ThrowsAsync<ClientResultException>(() => Chat().CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(400, error.Status);
        Assert.Contains("Invalid value for 'temperature'.", error.Message, StringComparison.Ordinal);
    }
}
