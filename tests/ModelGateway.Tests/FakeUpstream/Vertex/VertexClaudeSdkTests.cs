using System.Text;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using Anthropic.Vertex;
using ModelGateway.FakeUpstream;

namespace ModelGateway.Tests.FakeUpstream.Vertex;

/// <summary>
/// The official Anthropic C# SDK for Claude on Vertex AI (<c>Anthropic.Vertex</c>) reaches the fake's <c>rawPredict</c>
/// and <c>streamRawPredict</c> with an OAuth token it was handed, and reads what the fake sends.
/// </summary>
public sealed class VertexClaudeSdkTests
{
    private const string Token = "ya29.vertex-claude-sdk";
    private const string Model = "claude-sonnet-4-5@20250929";

    private static AnthropicVertexClient Client(FakeUpstreamServer server, string token = Token) =>
        new(new StaticTokenCredentials(token)) { BaseUrl = server.VertexBaseUrl, MaxRetries = 0 };

    private static MessageCreateParams Ask() => new() { Model = Model, MaxTokens = 256, Messages = [new UserMessageParam("Say hello")] };

    [Fact]
    public async Task Vertex_sdk_reads_plain_and_streamed_messages_from_raw_predict()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { VertexAccessToken = Token });
        server.DefaultBehavior = new UpstreamBehavior { Content = "Hello from Claude on Vertex.", ChunkCount = 3, CachedTokens = 2 };

        var message = await Client(server).Messages.Create(Ask());
        var text = new StringBuilder();
        string? stop = null;
        await foreach (var streamEvent in Client(server).Messages.CreateStreaming(Ask()))
        {
            if (streamEvent.TryPickContentBlockDelta(out var delta) && delta!.Delta.TryPickText(out var piece))
            {
                text.Append(piece!.Text);
            }
            else if (streamEvent.TryPickDelta(out var messageDelta))
            {
                stop = messageDelta!.Delta.StopReason?.Raw();
            }
        }

        Assert.True(Assert.Single(message.Content).TryPickText(out var block));
        Assert.Equal("Hello from Claude on Vertex.", block!.Text);
        Assert.Equal(2, message.Usage.CacheReadInputTokens);
        Assert.Equal("Hello from Claude on Vertex.", text.ToString());
        Assert.Equal("end_turn", stop);
        Assert.Equal(
            [":rawPredict", ":streamRawPredict"],
            server.Requests.Select(r => r.Path[r.Path.LastIndexOf(':')..]));
        Assert.All(server.Requests, r => Assert.Equal((UpstreamWire.VertexAnthropic, Model), (r.Wire, r.Model)));
        Assert.NotNull(server.Requests[0].Json!["anthropic_version"]);
        Assert.Null(server.Requests[0].Json!["model"]);
    }

    [Fact]
    public async Task Vertex_sdk_sees_a_wrong_token_and_an_overloaded_model_as_errors()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { VertexAccessToken = Token });
        server.Enqueue(new UpstreamBehavior { StatusCode = 529 });

        await Assert.ThrowsAsync<AnthropicUnauthorizedException>(() => Client(server, "ya29.stranger").Messages.Create(Ask()));
        await Assert.ThrowsAsync<AnthropicOverloadedException>(() => Client(server).Messages.Create(Ask()));
    }

    /// <summary>A token the caller already holds, so no Google credential machinery is consulted.</summary>
    private sealed class StaticTokenCredentials(string token) : IAnthropicVertexCredentials
    {
        public string Region => "us-east5";

        public string Project => "fake-project";

        public ValueTask ApplyAsync(HttpRequestMessage request)
        {
            request.Headers.Authorization = new("Bearer", token);
            return default;
        }
    }
}
