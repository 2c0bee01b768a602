using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream.Vertex;

/// <summary>
/// Claude on Vertex AI: <c>rawPredict</c> and <c>streamRawPredict</c> speak the Messages wire with the model in the
/// path and <c>anthropic_version</c> in the body, byte by byte (<see cref="VertexClaudeSdkTests"/> has the official client).
/// </summary>
public sealed class VertexClaudeWireTests
{
    private const string Token = "ya29.vertex-claude";
    private const string Path = "/v1/projects/fake-project/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929";

    private static HttpRequestMessage Predict(bool stream, Action<JsonObject>? edit = null, string? token = Token)
    {
        var body = new JsonObject
        {
            ["anthropic_version"] = "vertex-2023-10-16",
            ["max_tokens"] = 128,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Say hello" }),
        };
        if (stream)
        {
            body["stream"] = true;
        }

        edit?.Invoke(body);
        var request = new HttpRequestMessage(HttpMethod.Post, Path + (stream ? ":streamRawPredict" : ":rawPredict"))
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return request;
    }

    [Fact]
    public async Task Raw_predict_answers_a_message_for_the_path_model()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { VertexAccessToken = Token });
        using var http = NewClient(server);

        using var response = await SendAsync(http, Predict(stream: false));
        var json = await ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("message", json.GetProperty("type").GetString());
        Assert.Equal("claude-sonnet-4-5@20250929", json.GetProperty("model").GetString());
        Assert.Equal("end_turn", json.GetProperty("stop_reason").GetString());
        var recorded = Assert.Single(server.Requests);
        Assert.Equal((UpstreamWire.VertexAnthropic, "claude-sonnet-4-5@20250929"), (recorded.Wire, recorded.Model));
    }

    [Fact]
    public async Task Stream_raw_predict_sends_anthropic_events()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { VertexAccessToken = Token });
        server.DefaultBehavior = new UpstreamBehavior { ChunkCount = 2 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Predict(stream: true));
        using var sse = await NamedSseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.Equal(
            ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
            events.Select(e => e.Name));
    }

    [Fact]
    public async Task Wrong_token_is_googles_401_and_a_missing_anthropic_version_is_anthropics_400()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { VertexAccessToken = Token });
        server.Enqueue("claude-sonnet-4-5@20250929", new UpstreamBehavior { StatusCode = 429 });
        using var http = NewClient(server);

        using var wrong = await SendAsync(http, Predict(stream: false, token: "ya29.other"));
        using var noVersion = await SendAsync(http, Predict(stream: false, edit: b => b.Remove("anthropic_version")));
        using var quota = await SendAsync(http, Predict(stream: false));
        var wrongJson = await ReadJsonAsync(wrong);
        var noVersionJson = await ReadJsonAsync(noVersion);
        var quotaJson = await ReadJsonAsync(quota);

        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("UNAUTHENTICATED", wrongJson.GetProperty("error").GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, noVersion.StatusCode);
        Assert.Equal("anthropic_version: Field required", noVersionJson.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(HttpStatusCode.TooManyRequests, quota.StatusCode);
        Assert.Equal("RESOURCE_EXHAUSTED", quotaJson.GetProperty("error").GetProperty("status").GetString());
    }
}
