using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>Fast mode serves from precomputed templates, and must send the very same bytes as normal mode.</summary>
public sealed partial class FakeUpstreamFastModeTests
{
    [GeneratedRegex("\"id\":\"(chatcmpl|cmpl)-[A-Za-z0-9]{29}\",\"object\":\"([a-z._]+)\",\"created\":\\d+")]
    private static partial Regex VariableHeader();

    /// <summary>Blanks out what legitimately differs between two responses: id and timestamp.</summary>
    private static string Normalize(string text) => VariableHeader().Replace(text, "\"id\":\"$1-X\",\"object\":\"$2\",\"created\":0");

    private static async Task<string> RawAsync(FakeUpstreamServer server, string path, string body)
    {
        using var http = NewClient(server);
        using var response = await SendAsync(http, Post(path, body));
        return await response.Content.ReadAsStringAsync();
    }

    public static TheoryData<string, string> Requests() => new()
    {
        { "/v1/chat/completions", ChatBody(prompt: "a prompt of some length") },
        { "/v1/chat/completions", ChatBody(stream: true) },
        { "/v1/chat/completions", ChatBody(stream: true, includeUsage: true, prompt: "longer prompt text here, more tokens") },
        { "/v1/completions", """{"model":"instruct","prompt":"Say this","stream":true,"stream_options":{"include_usage":true}}""" },
        { "/v1/completions", """{"model":"instruct","prompt":"Say this"}""" },
        { "/openai/deployments/dep/chat/completions?api-version=2024-10-21", ChatBody(stream: true) },
        { "/v1/embeddings", """{"model":"e","input":["a","b"]}""" },
        { "/v1/chat/completions", ChatBody(extra: b => b["n"] = 2) },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task Fast_mode_sends_the_same_bytes_as_normal_mode(string path, string body)
    {
        var behavior = new UpstreamBehavior { ChunkCount = 4, Content = "Grüße from the fast path 😀 ok" };
        await using var normal = await FakeUpstreamServer.StartAsync();
        await using var fast = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { FastMode = true });
        normal.DefaultBehavior = behavior;
        fast.DefaultBehavior = behavior;

        var expected = Normalize(await RawAsync(normal, path, body));
        var first = Normalize(await RawAsync(fast, path, body));
        var second = Normalize(await RawAsync(fast, path, body)); // served from the cached template

        Assert.Equal(expected, first);
        Assert.Equal(expected, second);
    }

    [Fact]
    public async Task Fast_mode_templates_still_count_each_prompt()
    {
        await using var fast = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { FastMode = true });

        var shortPrompt = JsonNode.Parse(await RawAsync(fast, "/v1/chat/completions", ChatBody(prompt: "abcd")))!;
        var longPrompt = JsonNode.Parse(await RawAsync(fast, "/v1/chat/completions", ChatBody(prompt: new string('x', 400))))!;

        Assert.Equal(1, shortPrompt["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(6, shortPrompt["usage"]!["total_tokens"]!.GetValue<int>());
        Assert.Equal(100, longPrompt["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(105, longPrompt["usage"]!["total_tokens"]!.GetValue<int>());
        Assert.NotEqual(shortPrompt["id"]!.GetValue<string>(), longPrompt["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Fast_mode_counts_requests_but_records_none_and_ignores_queues()
    {
        await using var fast = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { FastMode = true });
        fast.Enqueue(new UpstreamBehavior { StatusCode = 500 });
        fast.SetBehaviorForModel("gpt-4o", new UpstreamBehavior { StatusCode = 500 });
        using var http = NewClient(fast);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody()));

        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, fast.RequestCount);
        Assert.Empty(fast.Requests);
    }

    [Fact]
    public async Task Fast_mode_picks_up_a_new_default_behaviour()
    {
        await using var fast = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { FastMode = true });

        var before = JsonNode.Parse(await RawAsync(fast, "/v1/chat/completions", ChatBody()))!;
        fast.DefaultBehavior = new UpstreamBehavior { Content = "changed" };
        var after = JsonNode.Parse(await RawAsync(fast, "/v1/chat/completions", ChatBody()))!;

        Assert.Equal("Hello from gpt-4o. This reply is streamed in pieces.", before["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal("changed", after["choices"]![0]!["message"]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task Fast_mode_streams_with_the_configured_chunk_count_and_faults()
    {
        await using var fast = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { FastMode = true, ExpectedApiKey = "k" });
        fast.DefaultBehavior = new UpstreamBehavior { ChunkCount = 3, Fault = UpstreamFault.OmitDone };
        using var http = NewClient(fast);

        using var unauthorized = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true), bearer: "k"));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, unauthorized.StatusCode);
        Assert.Equal(1 + 3 + 1, events.Count); // role, three pieces, finish; no [DONE]
    }
}
