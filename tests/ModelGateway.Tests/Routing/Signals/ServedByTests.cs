using System.Net;
using System.Text.Json;
using Anthropic.Models.Messages;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Tests.Protocols.Anthropic;
using OpenAI.Chat;

namespace ModelGateway.Tests.Routing.Signals;

/// <summary>Every response names what served it, even after a keep-alive; every error names what failed.</summary>
public sealed class ServedByTests : IAsyncLifetime
{
    private static readonly TimeSpan SlowFirstToken = TimeSpan.FromMilliseconds(700);

    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
              - { name: a, kind: anthropic, baseUrl: "{{_upstream.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: box-a, provider: p, model: model-a }
              - { name: box-b, provider: p, model: model-b }
              - { name: claude, provider: a, model: claude-sonnet-4-5 }
            routes:
              - { name: chat, strategy: priority, targets: [box-a, box-b], resilience: { keepAliveInterval: 150ms, maxAttempts: 2, firstTokenTimeout: 5s } }
              - { name: claude, targets: [claude], resilience: { keepAliveInterval: 150ms, firstTokenTimeout: 5s } }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task A_slow_first_token_keeps_the_route_header_and_names_the_deployment_in_an_sse_comment()
    {
        _upstream.SetBehaviorForModel("model-a", new UpstreamBehavior { FirstChunkDelay = SlowFirstToken });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("chat", Assert.Single(response.Headers.GetValues("x-modelgateway-route")));
        Assert.False(response.Headers.Contains("x-modelgateway-deployment"), "the deployment was not known when the headers left");
        Assert.StartsWith(": keep-alive\n\n", text, StringComparison.Ordinal);
        var comment = text.IndexOf(": modelgateway-deployment=box-a\n\n", StringComparison.Ordinal);
        Assert.True(comment > 0, text);
        Assert.True(comment < text.IndexOf("data: ", StringComparison.Ordinal), "the comment comes before the first event");
        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
        await WaitForAccessLogAsync("deployment=box-a");
    }

    [Fact]
    public async Task A_fast_answer_names_the_deployment_in_headers_and_sends_no_comment()
    {
        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal("box-a", Assert.Single(response.Headers.GetValues("x-modelgateway-deployment")));
        Assert.DoesNotContain("modelgateway-deployment=", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_openai_sdk_still_parses_a_stream_that_carries_the_deployment_comment()
    {
        _upstream.SetBehaviorForModel("model-a", new UpstreamBehavior { FirstChunkDelay = SlowFirstToken, Content = "Slow but sure." });

        var text = new System.Text.StringBuilder();
        await foreach (var update in _gateway.OpenAI().GetChatClient("chat").CompleteChatStreamingAsync([new UserChatMessage("hi")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.Equal("Slow but sure.", text.ToString());
    }

    [Fact]
    public async Task The_anthropic_sdk_still_parses_a_stream_that_carries_the_deployment_comment()
    {
        _upstream.SetBehaviorForModel("claude-sonnet-4-5", new UpstreamBehavior { FirstChunkDelay = SlowFirstToken, Content = "Slow but sure." });

        var streamed = await AnthropicClients.StreamAsync(AnthropicClients.For(_gateway), new MessageCreateParams { Model = "claude", MaxTokens = 100, Messages = [new UserMessageParam("hi")] });

        Assert.Equal("Slow but sure.", streamed.Text.ToString());
        Assert.Equal("message_stop", streamed.Kinds[^1]);
        await WaitForAccessLogAsync("deployment=claude");
    }

    [Fact]
    public async Task When_every_deployment_fails_the_openai_error_names_them_in_a_header_and_the_message()
    {
        _upstream.SetBehaviorForModel("model-a", new UpstreamBehavior { StatusCode = 503 });
        _upstream.SetBehaviorForModel("model-b", new UpstreamBehavior { StatusCode = 500 });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.True((int)response.StatusCode >= 500, body.ToString());
        Assert.Equal("box-a,box-b", Assert.Single(response.Headers.GetValues("x-modelgateway-failed-deployments")));
        var message = body.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("box-a", message, StringComparison.Ordinal);
        Assert.Contains("box-b", message, StringComparison.Ordinal);
        Assert.DoesNotContain(_upstream.OpenAIBaseUrl.ToString(), message, StringComparison.Ordinal);
        Assert.DoesNotContain(TestConfigs.ProviderKey, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_every_deployment_is_rate_limited_the_error_still_names_them()
    {
        _upstream.SetBehaviorForModel("model-a", new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after"] = "30" } });
        _upstream.SetBehaviorForModel("model-b", new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after"] = "30" } });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("box-a,box-b", Assert.Single(response.Headers.GetValues("x-modelgateway-failed-deployments")));
        Assert.Contains("box-a, box-b", body.GetProperty("error").GetProperty("message").GetString()!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_anthropic_client_gets_the_failed_deployments_in_its_own_error_format()
    {
        _upstream.SetBehaviorForModel("claude-sonnet-4-5", new UpstreamBehavior { StatusCode = 500 });

        using var response = await _gateway.PostAsync("v1/messages", """{"model":"claude","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}""");
        var error = await AnthropicClients.ErrorAsync(response);

        Assert.Equal("claude", Assert.Single(response.Headers.GetValues("x-modelgateway-failed-deployments")));
        Assert.Contains("claude", error.GetProperty("message").GetString()!, StringComparison.Ordinal);
    }

    private async Task WaitForAccessLogAsync(string fragment)
    {
        // Structured values are quoted when rendered through the test's logger provider.
        var lines = await _gateway.Logs.WaitForLinesAsync(m => m.Contains("ModelGateway.AccessLog", StringComparison.Ordinal) && m.Replace("\"", string.Empty, StringComparison.Ordinal).Contains(fragment, StringComparison.Ordinal));
        Assert.NotEmpty(lines);
    }
}
