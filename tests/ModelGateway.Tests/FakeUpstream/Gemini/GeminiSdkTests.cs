using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;

namespace ModelGateway.Tests.FakeUpstream.Gemini;

/// <summary>
/// The official <c>@google/genai</c> client, run by node, reads everything the fake's Gemini API sends: the proof that
/// the wire is exact. One node process serves several calls; each call uses its own model, and so its own behaviour.
/// </summary>
public sealed class GeminiSdkTests
{
    private const string Key = "AIza-fake-test-key-0001";

    private static JsonObject Call(string name, string kind, string model) => new() { ["name"] = name, ["kind"] = kind, ["model"] = model };

    private static Task<JsonObject> RunAsync(FakeUpstreamServer server, string key, params JsonObject[] calls) =>
        NodeSdkRunner.RunAsync("genai.mjs", new JsonObject
        {
            ["baseUrl"] = server.GeminiBaseUrl,
            ["apiKey"] = key,
            ["calls"] = new JsonArray(calls),
        });

    [Fact]
    public async Task Genai_client_reads_plain_streamed_tool_thinking_count_and_embedding_answers()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = Key });
        server.SetBehaviorForModel("gemini-plain", new UpstreamBehavior { CachedTokens = 3 });
        server.SetBehaviorForModel("gemini-stream", new UpstreamBehavior { Content = "One two three four.", ChunkCount = 3 });
        var calls = new UpstreamBehavior { ToolCalls = [new("get_weather", """{"location":"Paris"}"""), new("get_time", """{"location":"Tokyo"}""")] };
        server.SetBehaviorForModel("gemini-tools", calls);
        server.SetBehaviorForModel("gemini-stream-tools", calls);
        server.SetBehaviorForModel("gemini-thinking", new UpstreamBehavior { Thinking = "Greet briefly." });

        var results = await RunAsync(
            server,
            Key,
            Call("plain", "generate", "gemini-plain"),
            Call("stream", "stream", "gemini-stream"),
            Call("tools", "tools", "gemini-tools"),
            Call("streamTools", "streamTools", "gemini-stream-tools"),
            Call("thinking", "thinking", "gemini-thinking"),
            Call("count", "countTokens", "gemini-count"),
            Call("embed", "embed", "text-embedding-004"));

        var plain = results["plain"]!;
        Assert.Equal("Hello from gemini-plain. This reply is streamed in pieces.", plain["text"]!.GetValue<string>());
        Assert.Equal("STOP", plain["finishReason"]!.GetValue<string>());
        Assert.Equal(3, plain["usage"]!["cachedContentTokenCount"]!.GetValue<int>());
        Assert.Equal(5, plain["usage"]!["candidatesTokenCount"]!.GetValue<int>());
        Assert.Equal(
            plain["usage"]!["promptTokenCount"]!.GetValue<int>() + 5,
            plain["usage"]!["totalTokenCount"]!.GetValue<int>());

        var stream = results["stream"]!;
        Assert.Equal("One two three four.", stream["text"]!.GetValue<string>());
        Assert.Equal(3, stream["chunks"]!.AsArray().Count);
        Assert.Equal("STOP", stream["finishReason"]!.GetValue<string>());
        Assert.Equal(3, stream["usage"]!["candidatesTokenCount"]!.GetValue<int>());

        foreach (var name in new[] { "tools", "streamTools" })
        {
            var functionCalls = results[name]!["functionCalls"]!.AsArray();
            Assert.Equal(2, functionCalls.Count);
            Assert.Equal("get_weather", functionCalls[0]!["name"]!.GetValue<string>());
            Assert.Equal("Paris", functionCalls[0]!["args"]!["location"]!.GetValue<string>());
            Assert.Equal("get_time", functionCalls[1]!["name"]!.GetValue<string>());
        }

        var thinking = results["thinking"]!;
        var parts = thinking["parts"]!.AsArray();
        Assert.True(parts[0]!["thought"]!.GetValue<bool>());
        Assert.Equal("Greet briefly.", parts[0]!["text"]!.GetValue<string>());
        Assert.NotNull(parts[1]!["thoughtSignature"]);
        Assert.Equal("Hello from gemini-thinking. This reply is streamed in pieces.", thinking["text"]!.GetValue<string>());
        Assert.True(thinking["usage"]!["thoughtsTokenCount"]!.GetValue<int>() > 0);

        Assert.Equal(4, results["count"]!["totalTokens"]!.GetValue<int>());

        var embeddings = results["embed"]!["embeddings"]!.AsArray();
        Assert.Equal(3, embeddings.Count);
        Assert.Equal(16, embeddings[0]!.AsArray().Count);
        Assert.Equal(embeddings[0]!.ToJsonString(), embeddings[2]!.ToJsonString());
        Assert.NotEqual(embeddings[0]!.ToJsonString(), embeddings[1]!.ToJsonString());

        Assert.All(server.Requests, r => Assert.Equal(UpstreamWire.Gemini, r.Wire));
        var streamed = server.Requests.Single(r => r.Model == "gemini-stream");
        Assert.Matches("^/v1(beta)?/models/gemini-stream:streamGenerateContent$", streamed.Path);
        Assert.Equal("?alt=sse", streamed.QueryString);
        Assert.Equal(Key, streamed.Headers["x-goog-api-key"]);
        Assert.Contains(server.Requests, r => r.Path.EndsWith(":batchEmbedContents", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Genai_client_sees_google_errors_blocked_prompts_and_broken_streams()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = Key });
        server.SetBehaviorForModel("gemini-429", new UpstreamBehavior { StatusCode = 429, RetryAfter = TimeSpan.FromSeconds(12) });
        server.SetBehaviorForModel("gemini-long", new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded" });
        server.SetBehaviorForModel("gemini-blocked", new UpstreamBehavior { PromptBlockReason = "SAFETY" });
        server.SetBehaviorForModel("gemini-refused", new UpstreamBehavior { Refusal = "no" });
        server.SetBehaviorForModel("gemini-broken", new UpstreamBehavior { Fault = UpstreamFault.ErrorEvent, FaultAfterChunks = 2 });
        server.SetBehaviorForModel("gemini-max", new UpstreamBehavior { StopReason = "MAX_TOKENS" });

        var results = await RunAsync(
            server,
            Key,
            Call("limited", "generate", "gemini-429"),
            Call("long", "generate", "gemini-long"),
            Call("blocked", "generate", "gemini-blocked"),
            Call("refused", "generate", "gemini-refused"),
            Call("broken", "stream", "gemini-broken"),
            Call("max", "generate", "gemini-max"));
        var wrongKey = await RunAsync(server, "AIza-wrong", Call("wrong", "generate", "gemini-plain"));

        var limited = results["limited"]!["error"]!;
        Assert.Equal(429, limited["status"]!.GetValue<int>());
        Assert.Contains("RESOURCE_EXHAUSTED", limited["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("\"retryDelay\":\"12s\"", limited["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var tooLong = results["long"]!["error"]!;
        Assert.Equal(400, tooLong["status"]!.GetValue<int>());
        Assert.Contains("exceeds the maximum number of tokens allowed", tooLong["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("SAFETY", results["blocked"]!["blockReason"]!.GetValue<string>());
        Assert.Equal("SAFETY", results["refused"]!["finishReason"]!.GetValue<string>());
        Assert.Equal("MAX_TOKENS", results["max"]!["finishReason"]!.GetValue<string>());
        var broken = results["broken"]!;
        Assert.Equal("Hello from gemini-broken. ", broken["text"]!.GetValue<string>());
        Assert.Equal(503, broken["error"]!["status"]!.GetValue<int>());
        var wrong = wrongKey["wrong"]!["error"]!;
        Assert.Equal(400, wrong["status"]!.GetValue<int>());
        Assert.Contains("API key not valid", wrong["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
