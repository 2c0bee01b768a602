using System.ClientModel;
using System.Diagnostics;
using System.Net;
using System.Text;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Chat;

namespace ModelGateway.Tests.Resilience;

/// <summary>After the first byte, a broken stream ends with an error event and an abort: never a clean end, never [DONE].</summary>
public sealed class StreamingFailureTests : IAsyncLifetime
{
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
            deployments:
              - { name: only, provider: p, model: only-model }
              - { name: spare, provider: p, model: spare-model }
            routes:
              - { name: chat, targets: [only, spare], resilience: { idleTimeout: 1500ms, keepAliveInterval: 150ms, firstTokenTimeout: 5s } }
            """, new Dictionary<string, string?> { ["Gateway:FinishGrace"] = "00:00:00.300" });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    // Chunks are paced so the first ones have surely reached the gateway before the fault: the test is about
    // what happens after the first byte, not about a race with it.
    private static readonly TimeSpan Pace = TimeSpan.FromMilliseconds(150);

    public static TheoryData<string, UpstreamBehavior, string> MidStreamFaults => new()
    {
        { "reset", new UpstreamBehavior { ChunkCount = 6, ChunkDelay = Pace, Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 2 }, "stream_interrupted" },
        { "truncated", new UpstreamBehavior { ChunkCount = 6, ChunkDelay = Pace, Fault = UpstreamFault.TruncatedStream, FaultAfterChunks = 2 }, "stream_truncated" },
        { "malformed event", new UpstreamBehavior { ChunkCount = 6, ChunkDelay = Pace, Fault = UpstreamFault.MalformedSseEvent, FaultAfterChunks = 2 }, "bad_upstream_response" },
        { "idle gap", new UpstreamBehavior { ChunkCount = 6, ChunkDelay = Pace, Fault = UpstreamFault.IdleGap, FaultAfterChunks = 2, IdleGap = TimeSpan.FromSeconds(5) }, "stream_idle_timeout" },
    };

    [Theory]
    [MemberData(nameof(MidStreamFaults))]
    public async Task A_stream_that_breaks_after_the_first_byte_ends_with_an_error_event_and_an_abort(string fault, UpstreamBehavior behavior, string code)
    {
        _upstream.SetBehaviorForModel("only-model", behavior);

        var (received, aborted) = await ReadRawStreamAsync();

        Assert.True(aborted, $"{fault}: the connection must be aborted, not ended cleanly; upstream saw {string.Join(", ", _upstream.Requests.Select(r => r.Model))}; received ...{received[Math.Max(0, received.Length - 600)..]}");
        Assert.Contains("\"content\":", received, StringComparison.Ordinal);
        Assert.Contains($"data: {{\"error\":{{\"message\":", received, StringComparison.Ordinal);
        Assert.True(received.Contains($"\"code\":\"{code}\"", StringComparison.Ordinal), $"{fault}: expected {code}; received ...{received[Math.Max(0, received.Length - 400)..]}");
        Assert.DoesNotContain("[DONE]", received, StringComparison.Ordinal);
        Assert.DoesNotContain(_upstream.Requests, r => r.Model == "spare-model");
    }

    [Theory]
    [InlineData("malformed event", "bad_upstream_response")]
    [InlineData("idle gap", "stream_idle_timeout")]
    public async Task The_access_log_names_the_real_error_of_a_broken_stream_and_counts_the_one_upstream_call(string fault, string code)
    {
        _upstream.SetBehaviorForModel("only-model", MidStreamFaults.Single(row => (string)row[0] == fault)[1] as UpstreamBehavior ?? throw new InvalidOperationException(fault));

        var (_, aborted) = await ReadRawStreamAsync();

        Assert.True(aborted);
        var line = LogLines.Plain(Assert.Single(await _gateway.Logs.WaitForLinesAsync(l => LogLines.Plain(l).Contains("ModelGateway.AccessLog", StringComparison.Ordinal) && LogLines.Plain(l).Contains("route=chat", StringComparison.Ordinal))));
        Assert.Contains($"error={code} ", line, StringComparison.Ordinal);
        Assert.Contains("attempts=1 ", line, StringComparison.Ordinal);
        Assert.Single(_upstream.Requests);
    }

    [Fact]
    public async Task The_sdk_sees_a_broken_stream_as_an_exception_not_a_short_answer()
    {
        _upstream.SetBehaviorForModel("only-model", new UpstreamBehavior { ChunkCount = 6, ChunkDelay = Pace, Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 2 });
        var text = new StringBuilder();

        var error = await Record.ExceptionAsync(async () =>
        {
            await foreach (var update in _gateway.OpenAI().GetChatClient("chat").CompleteChatStreamingAsync([new UserChatMessage("hi")]))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }
            }
        });

        Assert.NotNull(error);
        Assert.True(error is IOException or HttpRequestException or ClientResultException, error.GetType().FullName);
        Assert.NotEqual("Hello from only-model. This reply is streamed in pieces.", text.ToString());
    }

    [Fact]
    public async Task A_complete_stream_without_done_is_finished_promptly()
    {
        _upstream.SetBehaviorForModel("only-model", new UpstreamBehavior { Fault = UpstreamFault.StallAfterFinish });

        var clock = Stopwatch.StartNew();
        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var text = await response.Content.ReadAsStringAsync();

        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}; the upstream never closed, so the gateway must not wait for it");
    }

    [Fact]
    public async Task A_stream_whose_upstream_omits_done_still_ends_with_done()
    {
        _upstream.SetBehaviorForModel("only-model", new UpstreamBehavior { Fault = UpstreamFault.OmitDone });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}""");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Contains("\"usage\":{\"prompt_tokens\"", text, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_slow_first_token_is_covered_by_keep_alive_comments()
    {
        _upstream.SetBehaviorForModel("only-model", new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromMilliseconds(800) });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var text = await response.Content.ReadAsStringAsync();

        Assert.StartsWith(": keep-alive\n\n", text, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
        Assert.Contains("Hello from only-model", string.Concat(text.Split("\"content\":\"").Skip(1).Select(p => p[..p.IndexOf('"', StringComparison.Ordinal)])), StringComparison.Ordinal);
    }

    private async Task<(string Received, bool Aborted)> ReadRawStreamAsync()
    {
        using var client = _gateway.NewClient();
        using var response = await client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = GatewayHost.Json("""{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""") },
            HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync();
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                received.Write(buffer, 0, read);
            }

            return (Encoding.UTF8.GetString(received.ToArray()), false);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            return (Encoding.UTF8.GetString(received.ToArray()), true);
        }
    }
}
