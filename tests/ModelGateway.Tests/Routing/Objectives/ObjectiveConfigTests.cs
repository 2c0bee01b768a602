using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;

namespace ModelGateway.Tests.Routing.Objectives;

/// <summary>A route objective in the routing file: compiled with its defaults, and every mistake reported with its path.</summary>
public sealed class ObjectiveConfigTests : IDisposable
{
    private readonly ServiceProvider _services;

    public ObjectiveConfigTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    private (GatewayCatalog? Catalog, List<ConfigError> Errors) Compile(string route)
    {
        var text = $$"""
            providers:
              - { name: local, kind: openai-compatible, baseUrl: "http://vllm:8000/v1" }
            deployments:
              - { name: llama@local, provider: local, model: llama, capacity: 16, pricing: { perHour: 2 }, latencyHalfLife: 5s }
              - { name: mini@local, provider: local, model: mini, pricing: { input: 0.15, output: 0.6 } }
            routes:
              - name: chat
                targets: [llama@local, mini@local]
            {{route}}
            """;
        var warnings = new List<ConfigError>();
        var document = RoutingConfigLoader.Parse(text, out var errors);
        var catalog = document is null ? null : _services.GetRequiredService<CatalogBuilder>().Build(document, "test", "hash", 1, errors, warnings);
        return (catalog, errors);
    }

    [Fact]
    public void An_objective_compiles_with_a_p99_default_a_5s_probe_interval_and_the_cost_strategy()
    {
        var (catalog, errors) = Compile("    objective: { ttft: 800ms, maxCostPer1k: 0.50 }");

        Assert.Empty(errors);
        var route = catalog!.RouteList.Single(r => r.Name == "chat");
        Assert.Equal(ModelGateway.Configuration.RoutingStrategyKind.Cost, route.Strategy);
        var slo = route.Slo!;
        Assert.Equal(TimeSpan.FromMilliseconds(800), slo.Target);
        Assert.Equal(99, slo.Objective!.Percentile);
        Assert.Equal(0.50, slo.Objective.MaxCostPer1k);
        Assert.Equal(TimeSpan.FromSeconds(5), slo.Objective.ProbeInterval);
        Assert.Equal(TimeSpan.FromSeconds(5), catalog.DeploymentList.Single(d => d.Name == "llama@local").LatencyHalfLife);
        Assert.Equal(TimeSpan.FromSeconds(10), catalog.DeploymentList.Single(d => d.Name == "mini@local").LatencyHalfLife);
    }

    [Fact]
    public void Every_mistake_in_an_objective_is_reported_with_its_path()
    {
        var (catalog, errors) = Compile("""
                slo: { ttft: 800ms }
                objective: { percentile: 97, maxCostPer1k: 0, probeInterval: 10ms }
            """);

        Assert.Null(catalog);
        var paths = errors.Select(e => e.Path).ToArray();
        Assert.Contains("routes[0].objective", paths);
        Assert.Contains("routes[0].objective.ttft", paths);
        Assert.Contains("routes[0].objective.percentile", paths);
        Assert.Contains("routes[0].objective.maxCostPer1k", paths);
        Assert.Contains("routes[0].objective.probeInterval", paths);
    }
}
