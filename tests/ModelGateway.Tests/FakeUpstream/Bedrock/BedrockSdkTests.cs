using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;

namespace ModelGateway.Tests.FakeUpstream.Bedrock;

/// <summary>
/// The official <c>@aws-sdk/client-bedrock-runtime</c> client, run by node, signs its requests with SigV4 and decodes
/// the fake's Converse bodies and binary event streams: the proof that the wire and the signature check are exact.
/// </summary>
public sealed class BedrockSdkTests
{
    private const string Region = "eu-west-3";
    private static readonly AwsCredentials Credentials = new("AKIAFAKEUPSTREAM0001", "fake/secret+key/For/Tests/0000000000000");

    private static JsonObject Call(string name, string model, bool stream = false, bool tools = false, bool thinking = false) =>
        new() { ["name"] = name, ["model"] = model, ["stream"] = stream, ["tools"] = tools, ["thinking"] = thinking };

    private static Task<JsonObject> RunAsync(FakeUpstreamServer server, AwsCredentials credentials, params JsonObject[] calls) =>
        NodeSdkRunner.RunAsync("bedrock.mjs", new JsonObject
        {
            ["endpoint"] = server.BedrockEndpoint,
            ["region"] = Region,
            ["accessKeyId"] = credentials.AccessKeyId,
            ["secretAccessKey"] = credentials.SecretAccessKey,
            ["calls"] = new JsonArray(calls),
        });

    private static FakeUpstreamOptions Options => new() { AwsCredentials = Credentials, AwsRegion = Region };

    [Fact]
    public async Task Bedrock_client_reads_converse_and_converse_stream_answers_for_an_inference_profile()
    {
        const string Profile = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        await using var server = await FakeUpstreamServer.StartAsync(Options);
        server.SetBehaviorForModel(Profile, new UpstreamBehavior { Content = "Hello from Bedrock, in pieces.", ChunkCount = 3, CachedTokens = 4, CacheWriteTokens = 2 });
        var calls = new UpstreamBehavior { ToolCalls = [new("get_weather", """{"location":"Paris"}"""), new("get_time", """{"location":"Tokyo"}""")] };
        server.SetBehaviorForModel("anthropic.claude-tools", calls);
        server.SetBehaviorForModel("anthropic.claude-thinking", new UpstreamBehavior { Thinking = "Be brief." });

        var results = await RunAsync(
            server,
            Credentials,
            Call("plain", Profile),
            Call("stream", Profile, stream: true),
            Call("tools", "anthropic.claude-tools", tools: true),
            Call("streamTools", "anthropic.claude-tools", stream: true, tools: true),
            Call("thinking", "anthropic.claude-thinking", stream: true, thinking: true),
            Call("thinkingPlain", "anthropic.claude-thinking", thinking: true));

        var plain = results["plain"]!;
        Assert.Null(plain["error"]);
        Assert.Equal("Hello from Bedrock, in pieces.", plain["content"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("end_turn", plain["stopReason"]!.GetValue<string>());
        Assert.Equal(3, plain["usage"]!["outputTokens"]!.GetValue<int>());
        Assert.Equal(4, plain["usage"]!["cacheReadInputTokens"]!.GetValue<int>());
        Assert.Equal(2, plain["usage"]!["cacheWriteInputTokens"]!.GetValue<int>());
        Assert.True(plain["metrics"]!["latencyMs"]!.GetValue<int>() >= 1);

        var stream = results["stream"]!;
        Assert.Null(stream["error"]);
        Assert.Equal("Hello from Bedrock, in pieces.", stream["text"]!.GetValue<string>());
        Assert.Equal(
            ["messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"],
            stream["events"]!.AsArray().Select(e => e!.GetValue<string>()));
        Assert.Equal("end_turn", stream["stopReason"]!.GetValue<string>());
        Assert.Equal(4, stream["usage"]!["cacheReadInputTokens"]!.GetValue<int>());

        var tools = results["tools"]!["content"]!.AsArray();
        Assert.Equal(2, tools.Count);
        Assert.Equal("get_weather", tools[0]!["toolUse"]!["name"]!.GetValue<string>());
        Assert.Equal("Paris", tools[0]!["toolUse"]!["input"]!["location"]!.GetValue<string>());
        Assert.StartsWith("tooluse_", tools[1]!["toolUse"]!["toolUseId"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("tool_use", results["tools"]!["stopReason"]!.GetValue<string>());
        var streamed = results["streamTools"]!["toolCalls"]!.AsArray();
        Assert.Equal(["get_weather", "get_time"], streamed.Select(c => c!["name"]!.GetValue<string>()));
        Assert.Equal("Tokyo", streamed[1]!["input"]!["location"]!.GetValue<string>());

        Assert.Equal("Be brief.", results["thinking"]!["reasoning"]!.GetValue<string>());
        var reasoning = results["thinkingPlain"]!["content"]![0]!["reasoningContent"]!["reasoningText"]!;
        Assert.Equal("Be brief.", reasoning["text"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(reasoning["signature"]!.GetValue<string>()));

        var recorded = server.Requests.First(r => r.Model == Profile);
        Assert.Equal(UpstreamWire.Bedrock, recorded.Wire);
        Assert.Equal("/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/converse", recorded.Path);
        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=AKIAFAKEUPSTREAM0001/", recorded.Headers["authorization"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bedrock_client_sees_aws_errors_stream_exceptions_and_a_refused_signature()
    {
        await using var server = await FakeUpstreamServer.StartAsync(Options);
        server.SetBehaviorForModel("throttled", new UpstreamBehavior { StatusCode = 429 });
        server.SetBehaviorForModel("too-long", new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded" });
        server.SetBehaviorForModel("unavailable", new UpstreamBehavior { StatusCode = 503 });
        server.SetBehaviorForModel("broken", new UpstreamBehavior { Fault = UpstreamFault.ErrorEvent, FaultAfterChunks = 2 });
        server.SetBehaviorForModel("guarded", new UpstreamBehavior { StopReason = "guardrail_intervened" });

        var results = await RunAsync(
            server,
            Credentials,
            Call("throttled", "throttled"),
            Call("tooLong", "too-long"),
            Call("unavailable", "unavailable"),
            Call("broken", "broken", stream: true),
            Call("guarded", "guarded"));
        var wrongSecret = await RunAsync(server, Credentials with { SecretAccessKey = "not-the-secret" }, Call("wrong", "anthropic.claude"));
        var wrongKey = await RunAsync(server, Credentials with { AccessKeyId = "AKIAUNKNOWN000000000" }, Call("unknown", "anthropic.claude"));

        Assert.Equal(("ThrottlingException", 429), Error(results["throttled"]!));
        Assert.Equal(("ValidationException", 400), Error(results["tooLong"]!));
        Assert.Equal("Input is too long for requested model.", results["tooLong"]!["error"]!["message"]!.GetValue<string>());
        Assert.Equal(("ServiceUnavailableException", 503), Error(results["unavailable"]!));
        var broken = results["broken"]!;
        Assert.Equal("ThrottlingException", broken["error"]!["name"]!.GetValue<string>());
        Assert.Equal("Hello from broken. ", broken["text"]!.GetValue<string>());
        Assert.Equal("guardrail_intervened", results["guarded"]!["stopReason"]!.GetValue<string>());
        Assert.Equal(("InvalidSignatureException", 403), Error(wrongSecret["wrong"]!));
        Assert.Equal(("UnrecognizedClientException", 403), Error(wrongKey["unknown"]!));
        Assert.All(server.Requests, r => Assert.Equal(UpstreamWire.Bedrock, r.Wire));
    }

    private static (string Name, int Status) Error(JsonNode result) =>
        (result["error"]!["name"]!.GetValue<string>(), result["error"]!["status"]!.GetValue<int>());
}
