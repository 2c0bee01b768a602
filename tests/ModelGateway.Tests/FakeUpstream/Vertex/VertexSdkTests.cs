using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;

namespace ModelGateway.Tests.FakeUpstream.Vertex;

/// <summary>The official <c>@google/genai</c> client in Vertex AI mode reaches the fake's regional publisher URLs with its OAuth token.</summary>
public sealed class VertexSdkTests
{
    private const string Token = "ya29.fake-vertex-access-token";

    private static JsonObject Call(string name, string kind, string model) => new() { ["name"] = name, ["kind"] = kind, ["model"] = model };

    private static Task<JsonObject> RunAsync(FakeUpstreamServer server, string token, params JsonObject[] calls) =>
        NodeSdkRunner.RunAsync("genai.mjs", new JsonObject
        {
            ["baseUrl"] = server.VertexBaseUrl,
            ["vertex"] = new JsonObject { ["project"] = "fake-project", ["location"] = "europe-west4", ["token"] = token },
            ["calls"] = new JsonArray(calls),
        });

    [Fact]
    public async Task Genai_client_in_vertex_mode_gets_plain_streamed_and_tool_answers_with_its_bearer_token()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { VertexAccessToken = Token });
        server.SetBehaviorForModel("gemini-2.5-flash", new UpstreamBehavior { Content = "Bonjour from Vertex.", ChunkCount = 2 });
        server.SetBehaviorForModel("gemini-2.5-pro", new UpstreamBehavior { RespondWithToolCall = true });
        server.SetBehaviorForModel("gemini-quota", new UpstreamBehavior { StatusCode = 429 });

        var results = await RunAsync(
            server,
            Token,
            Call("plain", "generate", "gemini-2.5-flash"),
            Call("stream", "stream", "gemini-2.5-flash"),
            Call("tools", "tools", "gemini-2.5-pro"),
            Call("quota", "generate", "gemini-quota"));
        var refused = await RunAsync(server, "ya29.someone-else", Call("wrong", "generate", "gemini-2.5-flash"));

        Assert.Equal("Bonjour from Vertex.", results["plain"]!["text"]!.GetValue<string>());
        Assert.Equal("Bonjour from Vertex.", results["stream"]!["text"]!.GetValue<string>());
        Assert.Equal(2, results["stream"]!["chunks"]!.AsArray().Count);
        var call = Assert.Single(results["tools"]!["functionCalls"]!.AsArray())!;
        Assert.Equal("get_weather", call["name"]!.GetValue<string>());
        Assert.Equal("Paris", call["args"]!["location"]!.GetValue<string>());
        Assert.Equal(429, results["quota"]!["error"]!["status"]!.GetValue<int>());
        var wrong = refused["wrong"]!["error"]!;
        Assert.Equal(401, wrong["status"]!.GetValue<int>());
        Assert.Contains("UNAUTHENTICATED", wrong["message"]!.GetValue<string>(), StringComparison.Ordinal);

        var plain = server.Requests.First(r => r.Model == "gemini-2.5-flash");
        Assert.Equal(UpstreamWire.VertexGemini, plain.Wire);
        Assert.Matches("^/v1(beta1)?/projects/fake-project/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent$", plain.Path);
        Assert.Equal("Bearer " + Token, plain.Headers["authorization"]);
    }
}
