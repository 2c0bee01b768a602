using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;

namespace ModelGateway.Tests.Routing.Quotas;

/// <summary>A deployment's limits in the provider's own terms, and the quota-learning switch, as the routing file states them.</summary>
public sealed class QuotaLimitsConfigTests : IDisposable
{
    private readonly ServiceProvider _services;

    public QuotaLimitsConfigTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    private (GatewayCatalog? Catalog, List<string> Errors) Compile(string deployments)
    {
        var document = RoutingConfigLoader.Parse($$"""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: "http://127.0.0.1:1/v1" }
            deployments:
            {{deployments}}
            routes:
              - { name: r, targets: [d] }
            """, out var errors);
        var catalog = document is null ? null : _services.GetRequiredService<CatalogBuilder>().Build(document, "test", "hash", 1, errors, []);
        return (catalog, errors.Select(e => e.ToString()).ToList());
    }

    [Fact]
    public void Windowed_limits_compile_to_a_count_per_window_and_rpm_tpm_to_a_count_per_minute()
    {
        var (catalog, errors) = Compile("""
              - { name: d, provider: p, model: m, limits: { requests: 60 per 10s, tokens: "100000 per 1m" }, quotas: { learn: false } }
              - { name: e, provider: p, model: m, limits: { rpm: 600, tpm: 90000 } }
            """);

        Assert.Empty(errors);
        Assert.Equal(new WindowLimit(60, 10), catalog!.Deployments["d"].RequestLimit);
        Assert.Equal(new WindowLimit(100_000, 60), catalog.Deployments["d"].TokenLimit);
        Assert.False(catalog.Deployments["d"].QuotaLearn);
        Assert.Equal(new WindowLimit(600, 60), catalog.Deployments["e"].RequestLimit);
        Assert.Equal(new WindowLimit(90_000, 60), catalog.Deployments["e"].TokenLimit);
        Assert.True(catalog.Deployments["e"].QuotaLearn);
    }

    [Fact]
    public void A_limit_that_is_not_count_per_window_or_is_set_twice_is_reported_with_its_path()
    {
        var (catalog, errors) = Compile("""
              - { name: d, provider: p, model: m, limits: { requests: 60 every 10s, tokens: "100 per 1.5s" } }
              - { name: e, provider: p, model: m, limits: { rpm: 60, requests: 10 per 1s, tokens: "5 per 2h" } }
            """);

        Assert.Null(catalog);
        Assert.Contains("deployments[0].limits.requests: '60 every 10s' is not a limit: write '<count> per <window>', e.g. '60 per 10s' or '100000 per 1m'", errors);
        Assert.Contains("deployments[0].limits.tokens: the window of '100 per 1.5s' must be whole seconds from 1s to 1h", errors);
        Assert.Contains("deployments[1].limits: set either rpm or requests, not both (rpm: 60 is '60 per 1m')", errors);
        Assert.Contains("deployments[1].limits.tokens: the window of '5 per 2h' must be whole seconds from 1s to 1h", errors);
    }
}
