using System.Text;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Chat;

namespace ModelGateway.Tests.Resilience;

/// <summary>Opt-in: a stream that breaks mid-way is continued on a deployment that supports prefill, seamlessly.</summary>
public sealed class ContinuationTests : IAsyncLifetime
{
    private const string Answer = "The quick brown fox jumps over the lazy dog and then rests in the warm afternoon sun.";
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 8 };
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
            deployments:
              - { name: primary, provider: p, model: primary-model, capabilities: [chat] }
              - { name: vllm, provider: p, model: vllm-model, capabilities: [chat, prefill] }
            routes:
              - { name: chat, strategy: priority, targets: [primary, vllm], resilience: { continuation: true } }
              - { name: plain, strategy: priority, targets: [primary, vllm] }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task A_broken_stream_is_continued_and_the_client_sees_one_complete_answer()
    {
        _upstream.SetBehaviorForModel("primary-model", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(100), Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 });

        var text = new StringBuilder();
        var ids = new HashSet<string>();
        await foreach (var update in _gateway.OpenAI().GetChatClient("chat").CompleteChatStreamingAsync([new UserChatMessage("Tell me about the fox")]))
        {
            ids.Add(update.CompletionId);
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.Equal(Answer, text.ToString());
        Assert.Single(ids);
        var continuation = Assert.Single(_upstream.Requests, r => r.Model == "vllm-model").Json!;
        Assert.True(continuation["continue_final_message"]!.GetValue<bool>());
        var messages = continuation["messages"]!.AsArray();
        Assert.Equal("assistant", messages[^1]!["role"]!.GetValue<string>());
        Assert.StartsWith(messages[^1]!["content"]!.GetValue<string>(), Answer, StringComparison.Ordinal);
        Assert.NotEmpty(messages[^1]!["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_rejected_prefill_never_masks_the_original_failure()
    {
        _upstream.SetBehaviorForModel("primary-model", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(100), Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 });
        _upstream.SetBehaviorForModel("vllm-model", new UpstreamBehavior { StatusCode = 400, ErrorMessage = "continue_final_message is not supported", ErrorCode = "invalid_parameter" });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var received = await ReadUntilBrokenAsync(response);

        Assert.Contains("\"code\":\"stream_interrupted\"", received, StringComparison.Ordinal);
        Assert.DoesNotContain("continue_final_message is not supported", received, StringComparison.Ordinal);
        Assert.DoesNotContain("[DONE]", received, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_the_route_option_a_broken_stream_is_not_continued()
    {
        _upstream.SetBehaviorForModel("primary-model", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(100), Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"plain","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var received = await ReadUntilBrokenAsync(response);

        Assert.Contains("\"code\":\"stream_interrupted\"", received, StringComparison.Ordinal);
        Assert.DoesNotContain(_upstream.Requests, r => r.Model == "vllm-model");
    }

    private static async Task<string> ReadUntilBrokenAsync(HttpResponseMessage response)
    {
        var stream = await response.Content.ReadAsStreamAsync();
        var received = new MemoryStream();
        try
        {
            await stream.CopyToAsync(received);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            // The abort is the point: the stream must not end cleanly.
            return Encoding.UTF8.GetString(received.ToArray());
        }

        Assert.Fail("the broken stream ended cleanly");
        return string.Empty;
    }
}
