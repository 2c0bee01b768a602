using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;

namespace ModelGateway.Tests.Providers.Media;

/// <summary><c>mediaFetch</c> in the routing file: off unless written, validated field by field with paths, inherited from the provider.</summary>
public sealed class MediaFetchConfigTests : IDisposable
{
    private readonly ServiceProvider _services;

    public MediaFetchConfigTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    private (GatewayCatalog? Catalog, List<ConfigError> Errors, List<ConfigError> Warnings) Compile(string deployments, string providerExtra = "")
    {
        var text = $$"""
            providers:
              - name: bytes
                kind: simulated
                simulate: { takesMediaUrls: false }
                {{providerExtra}}
              - { name: openai, kind: openai, apiKey: sk-literal-for-test }
            deployments:
            {{deployments}}
            """;
        var warnings = new List<ConfigError>();
        var document = RoutingConfigLoader.Parse(text, out var errors);
        Assert.True(document is not null, string.Join("; ", errors));
        var catalog = _services.GetRequiredService<CatalogBuilder>().Build(document, "test", "hash", 1, errors, warnings);
        return (catalog, errors, warnings);
    }

    [Fact]
    public void Without_media_fetch_a_deployment_that_needs_bytes_fetches_nothing()
    {
        var (catalog, errors, _) = Compile("  - { name: d, provider: bytes }");

        Assert.Empty(errors);
        var deployment = catalog!.Deployments["d"];
        Assert.False(deployment.TakesMediaUrls);
        Assert.Null(deployment.MediaFetch);
    }

    [Fact]
    public void An_empty_media_fetch_turns_fetching_on_with_safe_defaults()
    {
        var (catalog, errors, _) = Compile("  - { name: d, provider: bytes, mediaFetch: {} }");

        Assert.Empty(errors);
        var policy = catalog!.Deployments["d"].MediaFetch!;
        Assert.Null(policy.AllowedHosts);
        Assert.Equal([443], policy.AllowedPorts);
        Assert.Empty(policy.AllowedNetworks);
        Assert.Equal(20 * 1024 * 1024, policy.MaxBytes);
        Assert.Equal(TimeSpan.FromSeconds(10), policy.Timeout);
        Assert.Equal(0, policy.MaxRedirects);
        Assert.NotNull(policy.Refuses(IPAddress.Loopback));
    }

    [Fact]
    public void A_deployment_inherits_its_providers_media_fetch_and_may_switch_it_off()
    {
        var (catalog, errors, _) = Compile(
            """
              - { name: inherits, provider: bytes }
              - { name: opts-out, provider: bytes, mediaFetch: { enabled: false } }
              - { name: own, provider: bytes, mediaFetch: { allowedPorts: [8443] } }
            """,
            "mediaFetch: { allowedHosts: ['*.cdn.example.com', 'Bücher.example'], maxBytes: 1000, timeout: 3s, maxRedirects: 2 }");

        Assert.Empty(errors);
        var inherited = catalog!.Deployments["inherits"].MediaFetch!;
        Assert.True(inherited.AllowsHost("img.cdn.example.com"));
        Assert.True(inherited.AllowsHost("a.b.cdn.example.com"));
        Assert.False(inherited.AllowsHost("cdn.example.com"));
        Assert.False(inherited.AllowsHost("evilcdn.example.com"));
        Assert.True(inherited.AllowsHost("xn--bcher-kva.example"));
        Assert.Equal(1000, inherited.MaxBytes);
        Assert.Equal(TimeSpan.FromSeconds(3), inherited.Timeout);
        Assert.Null(catalog.Deployments["opts-out"].MediaFetch);
        var own = catalog.Deployments["own"].MediaFetch!;
        Assert.Equal([8443], own.AllowedPorts);
        Assert.Null(own.AllowedHosts);
    }

    [Fact]
    public void Every_bad_field_is_reported_with_its_path()
    {
        var (catalog, errors, _) = Compile(
            """
              - name: d
                provider: bytes
                mediaFetch:
                  allowedHosts: ["https://img.example.com/", "*", "img.*.example.com", ""]
                  allowedPorts: [0, 70000]
                  allowedAddresses: ["not-an-address", "0.0.0.0/0", "::/0"]
                  maxBytes: 0
                  timeout: 5m
                  maxRedirects: 9
            """);

        Assert.Null(catalog);
        var paths = errors.Select(e => e.Path).ToList();
        Assert.Equal(
            [
                "deployments[0].mediaFetch.allowedHosts[0]", "deployments[0].mediaFetch.allowedHosts[1]", "deployments[0].mediaFetch.allowedHosts[2]", "deployments[0].mediaFetch.allowedHosts[3]",
                "deployments[0].mediaFetch.allowedPorts[0]", "deployments[0].mediaFetch.allowedPorts[1]",
                "deployments[0].mediaFetch.allowedAddresses[0]", "deployments[0].mediaFetch.allowedAddresses[1]", "deployments[0].mediaFetch.allowedAddresses[2]",
                "deployments[0].mediaFetch.maxBytes", "deployments[0].mediaFetch.timeout", "deployments[0].mediaFetch.maxRedirects",
            ],
            paths);
        Assert.Contains(errors, e => e.Message.Contains("'*' allows every host", StringComparison.Ordinal));
    }

    [Fact]
    public void Allowing_the_metadata_address_or_fetching_for_a_kind_that_takes_urls_is_warned_about()
    {
        var (catalog, errors, warnings) = Compile(
            """
              - { name: d, provider: bytes, mediaFetch: { allowedAddresses: [169.254.0.0/16] } }
              - { name: o, provider: openai, model: gpt-4o, mediaFetch: {} }
            """);

        Assert.Empty(errors);
        Assert.Contains(warnings, w => w.Path == "deployments[0].mediaFetch.allowedAddresses[0]" && w.Message.Contains("cloud instance metadata", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Path == "deployments[1].mediaFetch" && w.Message.Contains("has no effect", StringComparison.Ordinal));
        Assert.True(catalog!.Deployments["o"].TakesMediaUrls);
        Assert.Null(catalog.Deployments["o"].MediaFetch);
    }
}
