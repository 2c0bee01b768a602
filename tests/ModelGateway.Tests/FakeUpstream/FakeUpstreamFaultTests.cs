using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>Each injected fault looks to the client the way the real failure would, and is recorded with the right outcome.</summary>
public sealed class FakeUpstreamFaultTests
{
    private static readonly TimeSpan ShortWindow = TimeSpan.FromMilliseconds(300);

    private static string? DeltaContent(string data) =>
        JsonNode.Parse(data)!["choices"]![0]!["delta"]!["content"]?.GetValue<string>();

    private static string? FinishReason(string data) =>
        JsonNode.Parse(data)!["choices"]!.AsArray() is { Count: > 0 } choices ? choices[0]!["finish_reason"]?.GetValue<string>() : null;

    /// <summary>
    /// Starts reading the next event and asserts it has not arrived when a short window closes.
    /// Returns the still-pending read (cancelling it would tear the connection down).
    /// </summary>
    private static async Task<Task<string?>> AssertNothingArrivesAsync(SseReader sse)
    {
        var next = sse.NextAsync();
        var first = await Task.WhenAny(next, Task.Delay(ShortWindow));
        Assert.NotSame(next, first);
        return next;
    }

    [Fact]
    public async Task Reset_before_headers_drops_the_connection_without_a_response()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.ResetBeforeHeaders };
        using var http = NewClient(server);

        await Assert.ThrowsAsync<HttpRequestException>(() => SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true))));

        var recorded = await server.WaitForRequestAsync(_ => true, Generous);
        Assert.Equal(RequestOutcome.ServerFault, await recorded.Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Reset_after_chunks_breaks_the_stream_mid_body()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 2 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using var sse = await SseReader.OpenAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(string.Empty, DeltaContent((await sse.NextAsync())!)); // role chunk
        Assert.Equal("Hello ", DeltaContent((await sse.NextAsync())!));
        Assert.Equal("from gpt-4o. ", DeltaContent((await sse.NextAsync())!));
        await Assert.ThrowsAnyAsync<IOException>(() => sse.NextAsync());
        Assert.Equal(RequestOutcome.ServerFault, await server.Requests[0].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Reset_after_chunks_on_a_non_streaming_request_cuts_the_body_short()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.ResetAfterChunks };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody()));
        var error = await Record.ExceptionAsync(() => response.Content.ReadAsByteArrayAsync());

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(error is IOException or HttpRequestException, $"unexpected {error}");
        Assert.Equal(RequestOutcome.ServerFault, await server.Requests[0].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Html_error_page_looks_like_nginx()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.HtmlErrorPage };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        var html = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("<head><title>502 Bad Gateway</title></head>", html, StringComparison.Ordinal);
        Assert.Contains("<center><h1>502 Bad Gateway</h1></center>", html, StringComparison.Ordinal);
        Assert.Contains("<hr><center>nginx</center>", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Html_error_page_uses_the_behaviour_status()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.HtmlErrorPage, StatusCode = 504 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody()));

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Contains("<title>504 Gateway Timeout</title>", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_json_is_a_200_whose_body_does_not_parse()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.InvalidJson };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        Assert.StartsWith("{\"id\":\"chatcmpl-", body, StringComparison.Ordinal);
        Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(body));
        Assert.Equal(RequestOutcome.Completed, await server.Requests[0].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Malformed_sse_event_is_followed_by_the_rest_of_the_stream()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.MalformedSseEvent, FaultAfterChunks = 1, ChunkCount = 3 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.Equal(1 + 1 + 1 + 2 + 1 + 1, events.Count); // role, piece, garbage, two pieces, finish, done
        Assert.Equal("{not json", events[2]);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal("stop", FinishReason(events[^2]));
    }

    [Fact]
    public async Task Omit_done_ends_the_body_cleanly_after_the_finish_and_usage_chunks()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.OmitDone };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true, includeUsage: true)));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("stop", FinishReason(events[^2]));
        Assert.NotNull(JsonNode.Parse(events[^1])!["usage"]!["total_tokens"]);
        Assert.Equal(RequestOutcome.Completed, await server.Requests[0].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Stall_after_finish_holds_the_connection_until_the_client_gives_up()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.StallAfterFinish, ChunkCount = 2 };
        using var http = NewClient(server);

        var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using (var sse = await SseReader.OpenAsync(response))
        {
            await sse.NextAsync();
            await sse.NextAsync();
            await sse.NextAsync();
            Assert.Equal("stop", FinishReason((await sse.NextAsync())!));
            var pending = await AssertNothingArrivesAsync(sse);
            Assert.False(server.Requests[0].Completion.IsCompleted);

            response.Dispose();
            await Record.ExceptionAsync(() => pending);
        }

        Assert.Equal(RequestOutcome.ClientAborted, await server.Requests[0].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Idle_gap_pauses_the_stream_then_it_completes()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.IdleGap, FaultAfterChunks = 2, IdleGap = ShortWindow };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using var sse = await SseReader.OpenAsync(response);
        for (var i = 0; i < 3; i++)
        {
            await sse.NextAsync();
        }

        var clock = Stopwatch.StartNew();
        var afterGap = await sse.NextAsync();
        var waited = clock.Elapsed;
        var rest = await sse.ReadAllAsync();

        Assert.True(waited >= ShortWindow - TimeSpan.FromMilliseconds(50), $"waited only {waited}");
        Assert.Equal("This reply ", DeltaContent(afterGap!));
        Assert.Equal("[DONE]", rest[^1]);
    }

    [Fact]
    public async Task Truncated_stream_ends_cleanly_without_finish_or_done()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.TruncatedStream, FaultAfterChunks = 2 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true, includeUsage: true)));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.Equal(3, events.Count); // role and two pieces
        Assert.All(events, e => Assert.Null(FinishReason(e)));
        Assert.Equal(RequestOutcome.Completed, await server.Requests[0].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Hold_before_last_chunk_delivers_earlier_chunks_and_waits_for_the_test()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.DefaultBehavior = new UpstreamBehavior { ChunkCount = 3, HoldBeforeLastChunk = hold.Task };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using var sse = await SseReader.OpenAsync(response);
        await sse.NextAsync();
        await sse.NextAsync();
        await sse.NextAsync();
        var last = await AssertNothingArrivesAsync(sse);
        Assert.False(server.Requests[0].Completion.IsCompleted);

        hold.SetResult();
        Assert.Equal("streamed in pieces.", DeltaContent((await last)!));
        var rest = await sse.ReadAllAsync();

        Assert.Equal(2, rest.Count); // finish, done
        Assert.Equal(RequestOutcome.Completed, await server.Requests[0].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Cancelling_mid_stream_is_recorded_as_client_aborted()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { ChunkCount = 200, ChunkDelay = TimeSpan.FromMilliseconds(20), Content = string.Join(' ', Enumerable.Repeat("word", 400)) };
        using var http = NewClient(server);
        using var cancel = new CancellationTokenSource();

        var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)), cancel.Token);
        using (var sse = await SseReader.OpenAsync(response))
        {
            await sse.NextAsync(cancel.Token);
            await sse.NextAsync(cancel.Token);
            cancel.Cancel();
        }

        response.Dispose();
        Assert.Equal(RequestOutcome.ClientAborted, await server.Requests[0].Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Request_is_recorded_before_a_header_delay_and_cancelling_it_is_client_aborted()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { HeaderDelay = TimeSpan.FromMinutes(10) };
        using var http = NewClient(server);
        using var cancel = new CancellationTokenSource();

        var pending = SendAsync(http, Post("/v1/chat/completions", ChatBody(prompt: "recorded early")), cancel.Token);
        var recorded = await server.WaitForRequestAsync(r => r.BodyText.Contains("recorded early", StringComparison.Ordinal), Generous);
        Assert.False(pending.IsCompleted);
        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        Assert.Equal(RequestOutcome.ClientAborted, await recorded.Completion.WaitAsync(Generous));
    }

    [Fact]
    public async Task Header_delay_holds_back_the_status_line()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { HeaderDelay = ShortWindow };
        using var http = NewClient(server);

        var clock = Stopwatch.StartNew();
        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));

        Assert.True(clock.Elapsed >= ShortWindow - TimeSpan.FromMilliseconds(50), $"headers after only {clock.Elapsed}");
    }

    [Fact]
    public async Task Stream_headers_are_sent_before_the_first_chunk_delay()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromMinutes(10) };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.False(server.Requests[0].Completion.IsCompleted);
    }

    [Fact]
    public async Task Dispose_stops_promptly_while_streams_are_held_open()
    {
        var server = await FakeUpstreamServer.StartAsync();
        var neverReleased = new TaskCompletionSource();
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.StallAfterFinish });
        server.Enqueue(new UpstreamBehavior { HoldBeforeLastChunk = neverReleased.Task });
        server.Enqueue(new UpstreamBehavior { HeaderDelay = TimeSpan.FromMinutes(10) });
        using var http = NewClient(server);

        using var stalled = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using var held = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        var delayed = SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        await server.WaitForRequestAsync(_ => server.RequestCount == 3, Generous);

        var clock = Stopwatch.StartNew();
        await server.DisposeAsync();

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"dispose took {clock.Elapsed}");
        await Assert.ThrowsAnyAsync<Exception>(() => delayed);
        Assert.All(server.Requests, r => Assert.True(r.Completion.IsCompleted));
    }
}
