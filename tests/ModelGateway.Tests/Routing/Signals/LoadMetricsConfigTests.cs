using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;

namespace ModelGateway.Tests.Routing.Signals;

/// <summary><c>deployments[].metrics</c> is checked with the rest of the routing file, each problem at its path.</summary>
public sealed class LoadMetricsConfigTests : IDisposable
{
    private readonly ServiceProvider _services;

    public LoadMetricsConfigTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    private (GatewayCatalog? Catalog, List<ConfigError> Errors) Compile(string metrics, string kind = "openai-compatible")
    {
        var text = $$"""
            providers:
              - { name: p, kind: {{kind}}, baseUrl: "http://vllm-0:8000/v1", apiKey: sk-literal-for-test }
            deployments:
              - { name: box, provider: p, model: llama, metrics: {{metrics}} }
            routes:
              - { name: chat, targets: [box] }
            """;
        var document = RoutingConfigLoader.Parse(text, out var errors);
        var catalog = document is null ? null : _services.GetRequiredService<CatalogBuilder>().Build(document, "test", "hash", 1, errors, []);
        return (catalog, errors);
    }

    [Fact]
    public void Interval_defaults_to_two_seconds_and_max_queue_to_zero()
    {
        var (catalog, errors) = Compile("""{ url: "http://vllm-0:8000/metrics" }""");

        Assert.Empty(errors);
        var metrics = catalog!.Deployments["box"].Metrics!;
        Assert.Equal(new Uri("http://vllm-0:8000/metrics"), metrics.Url);
        Assert.Equal(TimeSpan.FromSeconds(2), metrics.Interval);
        Assert.Equal(0, metrics.MaxQueue);
    }

    [Theory]
    [InlineData("""{ url: "vllm-0:8000/metrics" }""", "deployments[0].metrics.url")]
    [InlineData("""{ url: "ftp://vllm-0/metrics" }""", "deployments[0].metrics.url")]
    [InlineData("""{ interval: 2s }""", "deployments[0].metrics.url")]
    [InlineData("""{ url: "http://vllm-0:8000/metrics", interval: 10ms }""", "deployments[0].metrics.interval")]
    [InlineData("""{ url: "http://vllm-0:8000/metrics", maxQueue: -1 }""", "deployments[0].metrics.maxQueue")]
    public void A_bad_metrics_block_is_reported_at_its_path(string metrics, string path)
    {
        var (_, errors) = Compile(metrics);

        Assert.Contains(errors, e => e.Path == path);
    }

    [Fact]
    public void Only_self_hosted_servers_may_declare_metrics()
    {
        var (_, errors) = Compile("""{ url: "http://vllm-0:8000/metrics" }""", kind: "anthropic");

        Assert.Contains(errors, e => e.Path == "deployments[0].metrics" && e.Message.Contains("openai-compatible", StringComparison.Ordinal));
    }
}
