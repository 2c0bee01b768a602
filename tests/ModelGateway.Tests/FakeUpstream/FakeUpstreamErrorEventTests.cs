using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>The in-stream error fault on the OpenAI wire: an error object in a data event, then a clean end without <c>[DONE]</c>.</summary>
public sealed class FakeUpstreamErrorEventTests
{
    [Fact]
    public async Task Error_event_ends_an_openai_stream_with_an_error_object_and_no_done()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { Fault = UpstreamFault.ErrorEvent, FaultAfterChunks = 1 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true)));
        using var sse = await SseReader.OpenAsync(response);
        var events = await sse.ReadAllAsync();

        Assert.Equal(3, events.Count); // role, one piece, error
        var error = JsonNode.Parse(events[^1])!["error"]!;
        Assert.Equal("server_error", error["type"]!.GetValue<string>());
        Assert.Equal(RequestOutcome.Completed, await server.Requests[0].Completion.WaitAsync(Generous));
    }
}
