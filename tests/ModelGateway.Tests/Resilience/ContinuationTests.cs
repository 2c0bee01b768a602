using System.Text;
using System.Text.Json.Nodes;
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
              - { name: stall, strategy: priority, targets: [primary, vllm], resilience: { continuation: true, idleTimeout: 700ms } }
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

    [Fact]
    public async Task A_stream_that_stalls_is_continued_because_each_attempt_has_its_own_idle_clock()
    {
        _upstream.SetBehaviorForModel("primary-model", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(50), Fault = UpstreamFault.IdleGap, FaultAfterChunks = 3, IdleGap = TimeSpan.FromSeconds(10) });
        _upstream.SetBehaviorForModel("vllm-model", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(50) });

        var text = new StringBuilder();
        var ids = new HashSet<string>();
        await foreach (var update in _gateway.OpenAI().GetChatClient("stall").CompleteChatStreamingAsync([new UserChatMessage("Tell me about the fox")]))
        {
            ids.Add(update.CompletionId);
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.Equal(Answer, text.ToString());
        Assert.Single(ids);
        var line = LogLines.Plain(Assert.Single(await _gateway.Logs.WaitForLinesAsync(l => LogLines.Plain(l).Contains("ModelGateway.AccessLog", StringComparison.Ordinal) && LogLines.Plain(l).Contains("route=stall", StringComparison.Ordinal))));
        Assert.Contains("status=200 ", line, StringComparison.Ordinal);
        Assert.DoesNotContain("error=stream", line, StringComparison.Ordinal);
        Assert.Contains("attempts=2 continued=True", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_continued_stream_keeps_one_model_and_reports_the_prompt_once_and_the_completion_tokens_received()
    {
        const string body = """{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Tell me about the fox, please, in one sentence."}]}""";
        _upstream.SetBehaviorForModel("primary-model", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(100), Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 });
        _upstream.SetBehaviorForModel("vllm-model", new UpstreamBehavior { Content = Answer, ChunkCount = 8, PromptTokens = 500, CompletionTokens = 9 });

        using var response = await _gateway.PostAsync("v1/chat/completions", body);
        var events = (await response.Content.ReadAsStringAsync())
            .Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e["data: ".Length..])
            .Where(data => data != "[DONE]")
            .Select(data => System.Text.Json.Nodes.JsonNode.Parse(data)!)
            .ToList();

        // One answer: the model the client saw first, in every chunk, the continuation's included.
        Assert.All(events, e => Assert.Equal("primary-model", e["model"]!.GetValue<string>()));
        Assert.Single(events.Select(e => e["id"]!.GetValue<string>()).Distinct());

        // The prompt once (as the gateway counts it: the broken attempt never reported it), and every
        // completion token the client received: those of the broken part, counted, plus the continuation's, reported.
        var usage = Assert.Single(events, e => e["usage"] is JsonObject)["usage"]!;
        using var explained = await _gateway.PostAsync("v1/route/explain", body);
        var prompt = System.Text.Json.Nodes.JsonNode.Parse(await explained.Content.ReadAsStringAsync())!["estimated_input_tokens"]!.GetValue<long>();
        var prefill = _upstream.Requests.Single(r => r.Model == "vllm-model").Json!["messages"]!.AsArray()[^1]!["content"]!.GetValue<string>();
        var tokenizer = _gateway.Service<ModelGateway.Configuration.RoutingConfigManager>().Current.Deployments["primary"].Tokenizer;
        var received = _gateway.Service<ModelGateway.Routing.TokenEstimator>().CountText(prefill, tokenizer);
        Assert.Equal(prompt, usage["prompt_tokens"]!.GetValue<long>());
        Assert.Equal(received + 9, usage["completion_tokens"]!.GetValue<long>());
        Assert.Equal(prompt + received + 9, usage["total_tokens"]!.GetValue<long>());

        var line = LogLines.Plain(Assert.Single(await _gateway.Logs.WaitForLinesAsync(l => LogLines.Plain(l).Contains("ModelGateway.AccessLog", StringComparison.Ordinal) && LogLines.Plain(l).Contains("route=chat", StringComparison.Ordinal))));
        Assert.Contains($"tokens={prompt}/{received + 9} ", line, StringComparison.Ordinal);
        Assert.Contains("attempts=2 continued=True", line, StringComparison.Ordinal);
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
