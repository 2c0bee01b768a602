using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream.Gemini;

/// <summary>Byte-level checks of the Gemini API wire: keys, framing, zero-count omission, faults and errors.</summary>
public sealed class GeminiWireTests
{
    private const string Key = "AIza-wire-0001";

    private static string Body(string prompt = "Say hello") =>
        new JsonObject
        {
            ["contents"] = new JsonArray(new JsonObject { ["role"] = "user", ["parts"] = new JsonArray(new JsonObject { ["text"] = prompt }) }),
        }.ToJsonString();

    private static HttpRequestMessage Generate(string model, bool stream = false, string query = "", string? key = Key)
    {
        var method = stream ? "streamGenerateContent" : "generateContent";
        var request = new HttpRequestMessage(HttpMethod.Post, $"/v1beta/models/{model}:{method}{query}") { Content = new StringContent(Body(), Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.Add("x-goog-api-key", key);
        }

        return request;
    }

    [Fact]
    public async Task Keys_come_in_a_header_or_the_query_and_are_refused_in_googles_shape()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = Key });
        using var http = NewClient(server);

        using var header = await SendAsync(http, Generate("gemini-2.5-flash"));
        using var query = await SendAsync(http, Generate("gemini-2.5-flash", query: "?key=" + Key, key: null));
        using var missing = await SendAsync(http, Generate("gemini-2.5-flash", key: null));
        var missingJson = await ReadJsonAsync(missing);

        Assert.Equal(HttpStatusCode.OK, header.StatusCode);
        Assert.Equal(HttpStatusCode.OK, query.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, missing.StatusCode);
        Assert.Equal(["code", "message", "status"], PropertyNames(missingJson.GetProperty("error")));
        Assert.Equal("PERMISSION_DENIED", missingJson.GetProperty("error").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Response_leaves_out_zero_counts_and_names_the_model_version()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var response = await SendAsync(http, Generate("gemini-2.5-flash", key: null));
        var json = await ReadJsonAsync(response);

        Assert.Equal(["candidates", "usageMetadata", "modelVersion", "responseId"], PropertyNames(json));
        Assert.Equal(["content", "finishReason", "index"], PropertyNames(json.GetProperty("candidates")[0]));
        Assert.Equal(["promptTokenCount", "candidatesTokenCount", "totalTokenCount", "promptTokensDetails"], PropertyNames(json.GetProperty("usageMetadata")));
        Assert.Equal("model", json.GetProperty("candidates")[0].GetProperty("content").GetProperty("role").GetString());
        Assert.Equal("gemini-2.5-flash", json.GetProperty("modelVersion").GetString());
    }

    [Fact]
    public async Task Sse_chunks_use_crlf_and_only_the_last_carries_the_finish()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { ChunkCount = 3 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Generate("gemini-2.5-flash", stream: true, query: "?alt=sse", key: null));
        var raw = await response.Content.ReadAsStringAsync();

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var events = raw.Split("\r\n\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, events.Length);
        Assert.All(events, e => Assert.StartsWith("data: ", e, StringComparison.Ordinal));
        var chunks = events.Select(e => JsonNode.Parse(e["data: ".Length..])!).ToList();
        Assert.Null(chunks[0]["candidates"]![0]!["finishReason"]);
        Assert.Equal("STOP", chunks[2]["candidates"]![0]!["finishReason"]!.GetValue<string>());
        Assert.Null(chunks[0]["usageMetadata"]!["candidatesTokenCount"]);
        Assert.Equal(3, chunks[2]["usageMetadata"]!["candidatesTokenCount"]!.GetValue<int>());
    }

    [Fact]
    public async Task Stream_without_alt_sse_is_one_json_array()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { ChunkCount = 2 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Generate("gemini-2.5-flash", stream: true, key: null));
        var array = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsArray();

        Assert.Equal(2, array.Count);
        Assert.Equal("STOP", array[1]!["candidates"]![0]!["finishReason"]!.GetValue<string>());
    }

    [Fact]
    public async Task Stream_faults_keep_the_finish_from_arriving()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.OmitDone, ChunkCount = 3 });
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.TruncatedStream, FaultAfterChunks = 99, ChunkCount = 3 });
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.ErrorEvent, FaultAfterChunks = 1, ErrorType = "RESOURCE_EXHAUSTED" });
        using var http = NewClient(server);

        async Task<string[]> EventsAsync()
        {
            using var response = await SendAsync(http, Generate("gemini-2.5-flash", stream: true, query: "?alt=sse", key: null));
            return (await response.Content.ReadAsStringAsync()).Split("\r\n\r\n", StringSplitOptions.RemoveEmptyEntries);
        }

        var omitted = await EventsAsync();
        var truncated = await EventsAsync();
        var failed = await EventsAsync();

        Assert.Equal(2, omitted.Length);
        Assert.DoesNotContain("finishReason", string.Concat(omitted), StringComparison.Ordinal);
        Assert.Equal(2, truncated.Length);
        Assert.Equal(2, failed.Length);
        var error = JsonNode.Parse(failed[1]["data: ".Length..])!["error"]!;
        Assert.Equal((429, "RESOURCE_EXHAUSTED"), (error["code"]!.GetValue<int>(), error["status"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Missing_contents_is_invalid_argument_and_behaviours_follow_the_path_model()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.SetBehaviorForModel("gemini-busy", new UpstreamBehavior { StatusCode = 503 });
        using var http = NewClient(server);

        using var empty = await SendAsync(http, new HttpRequestMessage(HttpMethod.Post, "/v1beta/models/gemini-2.5-flash:generateContent") { Content = new StringContent("{}") });
        using var busy = await SendAsync(http, Generate("gemini-busy", key: null));
        var emptyJson = await ReadJsonAsync(empty);
        var busyJson = await ReadJsonAsync(busy);

        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
        Assert.Equal("INVALID_ARGUMENT", emptyJson.GetProperty("error").GetProperty("status").GetString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, busy.StatusCode);
        Assert.Equal("UNAVAILABLE", busyJson.GetProperty("error").GetProperty("status").GetString());
        Assert.Equal(["gemini-2.5-flash", "gemini-busy"], server.Requests.Select(r => r.Model));
    }
}
