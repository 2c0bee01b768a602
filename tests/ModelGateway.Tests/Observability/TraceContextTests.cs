using System.Text;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Observability;

/// <summary>
/// A gateway nobody traces (no OTLP endpoint, no listener) still keeps the client's trace intact, so a
/// provider's logs join the caller's trace. Run as its own process: in-process listeners of other
/// tests would make this gateway trace.
/// </summary>
public sealed class TraceContextTests : IAsyncLifetime
{
    private FakeUpstreamServer _upstream = null!;
    private string _configPath = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        _configPath = Path.Combine(Path.GetTempPath(), $"mg-trace-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(_configPath, $$"""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
            deployments:
              - { name: d, provider: p, model: upstream-model }
            routes:
              - { name: chat, targets: [d] }
            """);
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        File.Delete(_configPath);
    }

    [Fact]
    public async Task The_clients_trace_context_reaches_the_provider_unchanged_when_the_gateway_does_not_trace()
    {
        await using var gateway = await GatewayProcess.StartAsync(_configPath, new Dictionary<string, string>());
        const string Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent("""{"model":"chat","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("traceparent", Traceparent);
        request.Headers.Add("tracestate", "vendor=abc");

        using var response = await gateway.Http.SendAsync(request);

        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var sent = Assert.Single(_upstream.Requests);
        Assert.Equal(Traceparent, sent.Headers["traceparent"]);
        Assert.Equal("vendor=abc", sent.Headers["tracestate"]);
    }
}
