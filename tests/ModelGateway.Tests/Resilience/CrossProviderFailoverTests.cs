using System.Text;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Chat;

namespace ModelGateway.Tests.Resilience;

/// <summary>
/// One route mixing an OpenAI-wire deployment and an Anthropic one: failover crosses wire formats
/// before the first byte, and a stream broken mid-way is continued on the other wire, seamlessly.
/// </summary>
public sealed class CrossProviderFailoverTests : IAsyncLifetime
{
    private const string Answer = "The quick brown fox jumps over the lazy dog and then rests in the warm afternoon sun.";
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 8 };
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: openai, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: anthropic, kind: anthropic, baseUrl: "{{_upstream.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: gpt, provider: openai, model: gpt-4o, capabilities: [chat, prefill] }
              - { name: claude, provider: anthropic, model: claude-sonnet-4-5 }
            routes:
              - { name: openai-first, strategy: priority, targets: [gpt, claude], resilience: { continuation: true } }
              - { name: claude-first, strategy: priority, targets: [claude, gpt], resilience: { continuation: true } }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task A_failing_openai_deployment_fails_over_to_anthropic_before_the_first_byte()
    {
        _upstream.SetBehaviorForModel("gpt-4o", new UpstreamBehavior { StatusCode = 503 });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"openai-first","messages":[{"role":"user","content":"Tell me about the fox"}]}""");
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.IsSuccessStatusCode, body);
        Assert.Contains(Answer, body, StringComparison.Ordinal);
        Assert.Equal("claude", response.Headers.GetValues("x-modelgateway-deployment").Single());
        Assert.Equal("2", response.Headers.GetValues("x-modelgateway-attempts").Single());
        Assert.Equal(["gpt-4o", "claude-sonnet-4-5"], _upstream.Requests.Select(r => r.Model));
    }

    [Fact]
    public async Task A_failing_anthropic_stream_fails_over_to_openai_before_the_first_byte()
    {
        _upstream.SetBehaviorForModel("claude-sonnet-4-5", new UpstreamBehavior { StatusCode = 529 });

        var text = new StringBuilder();
        await foreach (var update in _gateway.OpenAI().GetChatClient("claude-first").CompleteChatStreamingAsync([new UserChatMessage("Tell me about the fox")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.Equal(Answer, text.ToString());
        Assert.Equal(["claude-sonnet-4-5", "gpt-4o"], _upstream.Requests.Select(r => r.Model));
    }

    [Fact]
    public async Task An_openai_stream_broken_mid_way_is_continued_on_anthropic_as_one_answer()
    {
        _upstream.SetBehaviorForModel("gpt-4o", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(50), Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 });

        var (text, ids) = await StreamAsync("openai-first");

        Assert.Equal(Answer, text);
        Assert.Single(ids);
        var continuation = Assert.Single(_upstream.Requests, r => r.Model == "claude-sonnet-4-5").Json!;
        var messages = continuation["messages"]!.AsArray();
        Assert.Equal("assistant", messages[^1]!["role"]!.GetValue<string>());
        var prefill = messages[^1]!["content"]![0]!["text"]!.GetValue<string>();
        Assert.StartsWith(prefill, Answer, StringComparison.Ordinal);
        Assert.Equal(prefill.TrimEnd(), prefill);
    }

    [Fact]
    public async Task An_anthropic_stream_broken_mid_way_is_continued_on_openai_as_one_answer()
    {
        _upstream.SetBehaviorForModel("claude-sonnet-4-5", new UpstreamBehavior { Content = Answer, ChunkCount = 8, ChunkDelay = TimeSpan.FromMilliseconds(50), Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 });

        var (text, ids) = await StreamAsync("claude-first");

        Assert.Equal(Answer, text);
        Assert.Single(ids);
        var continuation = Assert.Single(_upstream.Requests, r => r.Model == "gpt-4o").Json!;
        Assert.True(continuation["continue_final_message"]!.GetValue<bool>());
    }

    private async Task<(string Text, HashSet<string> Ids)> StreamAsync(string route)
    {
        var text = new StringBuilder();
        var ids = new HashSet<string>();
        await foreach (var update in _gateway.OpenAI().GetChatClient(route).CompleteChatStreamingAsync([new UserChatMessage("Tell me about the fox")]))
        {
            ids.Add(update.CompletionId);
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        return (text.ToString(), ids);
    }
}
