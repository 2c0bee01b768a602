using System.Net;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Resilience;

/// <summary>
/// Where a request goes after an upstream says "context length exceeded", as docs/resilience.md and
/// docs/configuration.md describe it, including deployments without a <c>contextWindow</c>.
/// </summary>
public sealed class ContextLengthFailoverTests : IAsyncLifetime
{
    private static readonly UpstreamBehavior TooLong = new() { StatusCode = 400, ErrorCode = "context_length_exceeded", ErrorMessage = "This model's maximum context length is exceeded." };
    private FakeUpstreamServer _open = null!;
    private FakeUpstreamServer _small = null!;
    private FakeUpstreamServer _large = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _open = await FakeUpstreamServer.StartAsync();
        _small = await FakeUpstreamServer.StartAsync();
        _large = await FakeUpstreamServer.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: p-open, kind: openai-compatible, baseUrl: "{{_open.OpenAIBaseUrl}}" }
              - { name: p-small, kind: openai-compatible, baseUrl: "{{_small.OpenAIBaseUrl}}" }
              - { name: p-large, kind: openai-compatible, baseUrl: "{{_large.OpenAIBaseUrl}}" }
            deployments:
              - { name: open, provider: p-open, model: open-model }
              - { name: small, provider: p-small, model: small-model, contextWindow: 4096 }
              - { name: large, provider: p-large, model: large-model, contextWindow: 128000 }
            routes:
              - { name: open-first, strategy: priority, targets: [open, small] }
              - { name: large-first, strategy: priority, targets: [large, small, open] }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _open.DisposeAsync();
        await _small.DisposeAsync();
        await _large.DisposeAsync();
    }

    [Fact]
    public async Task After_a_deployment_without_a_context_window_runs_out_every_other_target_is_still_tried()
    {
        _open.DefaultBehavior = TooLong;

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"open-first","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("small", response.Headers.GetValues("x-modelgateway-deployment").Single());
        Assert.Equal(1, _open.RequestCount);
    }

    [Fact]
    public async Task After_a_deployment_with_a_context_window_runs_out_only_larger_or_unsized_targets_are_tried()
    {
        _large.DefaultBehavior = TooLong;

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"large-first","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("open", response.Headers.GetValues("x-modelgateway-deployment").Single());
        Assert.Equal(1, _large.RequestCount);
        Assert.Equal(0, _small.RequestCount);
    }
}
