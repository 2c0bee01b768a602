using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>Behaviour selection, recording and waiting: the knobs the gateway's tests turn.</summary>
public sealed class FakeUpstreamControlTests
{
    private static async Task<string> ContentOfAsync(HttpClient http, string model)
    {
        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(model: model)));
        var json = await ReadJsonAsync(response);
        return json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
    }

    private static UpstreamBehavior Says(string content) => new() { Content = content };

    [Fact]
    public async Task Model_queue_beats_global_queue_beats_sticky_beats_default()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = Says("default");
        server.SetBehaviorForModel("a", Says("sticky a"));
        server.Enqueue(Says("global 1"));
        server.Enqueue(Says("global 2"));
        server.Enqueue("a", Says("queued a"));
        using var http = NewClient(server);

        Assert.Equal("queued a", await ContentOfAsync(http, "a"));
        Assert.Equal("global 1", await ContentOfAsync(http, "a"));
        Assert.Equal("global 2", await ContentOfAsync(http, "b"));
        Assert.Equal("sticky a", await ContentOfAsync(http, "a"));
        Assert.Equal("sticky a", await ContentOfAsync(http, "a"));
        Assert.Equal("default", await ContentOfAsync(http, "b"));

        server.ClearBehaviorForModel("a");
        Assert.Equal("default", await ContentOfAsync(http, "a"));
    }

    [Fact]
    public async Task Model_queue_is_only_consumed_by_its_model()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.Enqueue("a", new UpstreamBehavior { StatusCode = 503 });
        using var http = NewClient(server);

        using var b = await SendAsync(http, Post("/v1/chat/completions", ChatBody(model: "b")));
        using var a1 = await SendAsync(http, Post("/v1/chat/completions", ChatBody(model: "a")));
        using var a2 = await SendAsync(http, Post("/v1/chat/completions", ChatBody(model: "a")));

        Assert.Equal(HttpStatusCode.OK, b.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, a1.StatusCode);
        Assert.Equal(HttpStatusCode.OK, a2.StatusCode);
    }

    [Fact]
    public async Task Azure_deployment_selects_the_behaviour_not_the_body_model()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.SetBehaviorForModel("eu-deployment", new UpstreamBehavior { StatusCode = 429 });
        using var http = NewClient(server);

        using var response = await SendAsync(
            http, Post("/openai/deployments/eu-deployment/chat/completions?api-version=2024-10-21", ChatBody(model: "gpt-4o")));

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
    }

    [Fact]
    public async Task Recorded_request_keeps_method_path_query_headers_and_raw_body()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);
        var body = ChatBody(model: "gpt-4o-mini", prompt: "naïve 😀");
        var request = Post("/v1/chat/completions?trace=1", body, bearer: "sk-abc");
        request.Headers.Add("X-Custom", ["one", "two"]);
        request.Headers.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        var before = DateTimeOffset.UtcNow;

        using var response = await SendAsync(http, request);
        await response.Content.ReadAsByteArrayAsync();

        var recorded = Assert.Single(server.Requests);
        Assert.Equal("POST", recorded.Method);
        Assert.Equal("/v1/chat/completions", recorded.Path);
        Assert.Equal("?trace=1", recorded.QueryString);
        Assert.Equal("Bearer sk-abc", recorded.Headers["Authorization"]);
        Assert.Equal("one, two", recorded.Headers["x-custom"]);
        Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", recorded.Headers["TraceParent"]);
        Assert.Equal(Encoding.UTF8.GetBytes(body), recorded.Body);
        Assert.Equal(body, recorded.BodyText);
        Assert.Equal("naïve 😀", recorded.Json!["messages"]![0]!["content"]!.GetValue<string>());
        Assert.Equal("gpt-4o-mini", recorded.Model);
        Assert.InRange(recorded.ReceivedAt, before.AddSeconds(-1), DateTimeOffset.UtcNow.AddSeconds(1));
        Assert.Equal(RequestOutcome.Completed, await recorded.Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Requests_that_fail_validation_are_recorded_too()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        using var notJson = await SendAsync(http, Post("/v1/chat/completions", "not json"));
        using var unknown = await SendAsync(http, Post("/v1/unknown", """{"model":"m"}"""));

        Assert.Equal(2, server.RequestCount);
        Assert.Null(server.Requests[0].Json);
        Assert.Null(server.Requests[0].Model);
        Assert.Equal("m", server.Requests[1].Model);
        Assert.Equal(RequestOutcome.Completed, await server.Requests[1].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Wait_for_request_returns_one_that_already_arrived()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);
        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(model: "early")));

        var recorded = await server.WaitForRequestAsync(r => r.Model == "early", Generous);

        Assert.Equal("early", recorded.Model);
    }

    [Fact]
    public async Task Wait_for_request_completes_when_a_matching_request_arrives_later()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        var waiting = server.WaitForRequestAsync(r => r.Model == "second", Generous);
        using var first = await SendAsync(http, Post("/v1/chat/completions", ChatBody(model: "first")));
        Assert.False(waiting.IsCompleted);
        using var second = await SendAsync(http, Post("/v1/chat/completions", ChatBody(model: "second")));

        Assert.Equal("second", (await waiting).Model);
    }

    [Fact]
    public async Task Wait_for_request_times_out_with_a_timeout_exception()
    {
        await using var server = await FakeUpstreamServer.StartAsync();

        await Assert.ThrowsAsync<TimeoutException>(() => server.WaitForRequestAsync(_ => true, TimeSpan.FromMilliseconds(50)));
    }

    [Fact]
    public async Task Clear_recorded_forgets_requests_and_resets_the_count()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);
        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody()));
        var snapshot = server.Requests;

        server.ClearRecorded();

        Assert.Single(snapshot);
        Assert.Empty(server.Requests);
        Assert.Equal(0, server.RequestCount);
    }

    [Fact]
    public async Task Concurrent_streams_are_all_served_and_recorded()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { ChunkDelay = TimeSpan.FromMilliseconds(5) };
        using var http = NewClient(server);

        var streams = Enumerable.Range(0, 50).Select(async i =>
        {
            using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(model: $"m{i}", stream: true)));
            using var sse = await SseReader.OpenAsync(response);
            return await sse.ReadAllAsync();
        });
        var results = await Task.WhenAll(streams);

        Assert.All(results, events => Assert.Equal("[DONE]", events[^1]));
        Assert.Equal(50, server.RequestCount);
        Assert.Equal(50, server.Requests.Select(r => r.Model).Distinct().Count());
    }

    [Fact]
    public async Task Default_behaviour_can_be_swapped_while_running()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        using var http = NewClient(server);

        Assert.Equal("Hello from m. This reply is streamed in pieces.", await ContentOfAsync(http, "m"));
        server.DefaultBehavior = Says("swapped");
        Assert.Equal("swapped", await ContentOfAsync(http, "m"));
        Assert.Equal("swapped", server.DefaultBehavior.Content);
    }

    [Fact]
    public async Task Server_addresses_point_at_the_listening_port()
    {
        await using var server = await FakeUpstreamServer.StartAsync();

        Assert.InRange(server.Port, 1, 65535);
        Assert.Equal(new Uri($"http://127.0.0.1:{server.Port}/"), server.BaseUri);
        Assert.Equal($"http://127.0.0.1:{server.Port}/v1", server.OpenAIBaseUrl);
        Assert.Equal($"http://127.0.0.1:{server.Port}", server.AzureEndpoint);
        var json = JsonNode.Parse(ChatBody())!;
        Assert.Equal("gpt-4o", json["model"]!.GetValue<string>());
    }
}
