using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;

namespace ModelGateway.Tests.Configuration;

/// <summary>The resilience fields of the routing file: their shipped defaults, inheritance, and every mistake reported with its path.</summary>
public sealed class ResilienceSettingsTests : IDisposable
{
    private readonly ServiceProvider _services;

    public ResilienceSettingsTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    private (GatewayCatalog? Catalog, List<string> Errors) Compile(string text)
    {
        var warnings = new List<ConfigError>();
        var document = RoutingConfigLoader.Parse(text, out var errors);
        var catalog = document is null ? null : _services.GetRequiredService<CatalogBuilder>().Build(document, "test", "hash", 1, errors, warnings);
        return (catalog, errors.Select(e => e.ToString()).ToList());
    }

    private static string File(string defaults = "", string provider = "", string target = "a", string route = "", string breaker = "") => $$"""
        {{defaults}}
        providers:
          - { name: p, kind: openai-compatible, baseUrl: "http://vllm:8000/v1"{{provider}} }
        deployments:
          - { name: a, provider: p, model: m-a{{breaker}} }
          - { name: b, provider: p, model: o3 }
        routes:
          - { name: chat, targets: [{{target}}, b]{{route}} }
        """;

    [Fact]
    public void The_shipped_defaults_retry_nothing_break_for_5s_up_to_a_minute_and_probe_every_second()
    {
        var (catalog, errors) = Compile(File());

        Assert.Empty(errors);
        var route = catalog!.Routes["chat"];
        var a = catalog.Deployments["a"];
        Assert.Equal(0, route.RetriesFor(a));
        Assert.Equal(TimeSpan.FromSeconds(2), route.Resilience.MaxRetryAfter);
        Assert.Equal(TimeSpan.FromMinutes(5), route.Resilience.ReasoningFirstTokenTimeout);
        Assert.Equal(5, a.CircuitBreaker.ConsecutiveFailures);
        Assert.Equal(TimeSpan.FromSeconds(5), a.CircuitBreaker.BreakDuration);
        Assert.Equal(TimeSpan.FromSeconds(60), a.CircuitBreaker.MaxBreakDuration);
        Assert.Equal(new ProbeSettings(true, TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(10)), a.Provider.Probe);
        Assert.False(a.IsReasoningModel);
        Assert.True(catalog.Deployments["b"].IsReasoningModel);
    }

    [Fact]
    public void A_target_s_retries_win_over_the_route_s_and_probes_inherit_field_by_field()
    {
        var (catalog, errors) = Compile(File(
            defaults: "defaults: { resilience: { retries: 1 }, probe: { interval: 3s, timeout: 4s } }",
            provider: ", probe: { jitter: 500ms }",
            target: "{ deployment: a, retries: 3 }"));

        Assert.Empty(errors);
        var route = catalog!.Routes["chat"];
        Assert.Equal(3, route.RetriesFor(catalog.Deployments["a"]));
        Assert.Equal(1, route.RetriesFor(catalog.Deployments["b"]));
        Assert.Equal(new ProbeSettings(true, TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(4)), catalog.Providers["p"].Probe);
    }

    [Fact]
    public void Every_mistake_in_the_resilience_fields_is_reported_with_its_path()
    {
        var (catalog, errors) = Compile(File(
            defaults: "defaults: { probe: { interval: 100ms } }",
            provider: ", probe: { interval: 2s, jitter: 3s, timeout: 0s }",
            target: "{ deployment: a, retries: 11 }",
            route: ", resilience: { retries: -1, maxRetryAfter: soon, reasoningFirstTokenTimeout: 0s }",
            breaker: ", circuitBreaker: { breakDuration: 10s, maxBreakDuration: 5s }"));

        Assert.Null(catalog);
        string[] expected =
            [
                "defaults.probe.interval: must be at least 500ms",
                "providers[0].probe.jitter: must be shorter than interval",
                "providers[0].probe.timeout: must be longer than 0",
                "deployments[0].circuitBreaker.maxBreakDuration: must not be shorter than breakDuration",
                "routes[0].targets[0].retries: must be between 0 and 10",
                "routes[0].resilience.retries: must be between 0 and 10",
                "routes[0].resilience.maxRetryAfter: 'soon' is not a duration (e.g. 800ms, 30s, 5m, 1h)",
                "routes[0].resilience.reasoningFirstTokenTimeout: must be longer than 0",
            ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), errors.Order(StringComparer.Ordinal));
    }
}
