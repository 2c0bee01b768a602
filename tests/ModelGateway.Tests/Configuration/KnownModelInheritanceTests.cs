using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Catalog;
using ModelGateway.Configuration;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Configuration;

/// <summary>
/// A deployment that names a known model inherits its figures from the shipped catalog; what the file
/// states wins; /v1/models and explain say where every figure came from.
/// </summary>
public sealed class KnownModelInheritanceTests : IDisposable
{
    private readonly ServiceProvider _services;

    public KnownModelInheritanceTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    private (GatewayCatalog? Catalog, List<ConfigError> Errors) Compile(string deployments)
    {
        var text = $"""
            providers:
              - {"{"} name: anthropic, kind: anthropic, apiKey: sk-ant-literal-for-test {"}"}
              - {"{"} name: azure, kind: azure-openai, baseUrl: "https://example.openai.azure.com", apiKey: azure-literal-for-test {"}"}
            deployments:
            {deployments}
            """;
        var document = RoutingConfigLoader.Parse(text, out var errors);
        var catalog = document is null ? null : _services.GetRequiredService<CatalogBuilder>().Build(document, "test", "hash", 1, errors, []);
        return (catalog, errors);
    }

    [Fact]
    public void A_deployment_naming_a_known_model_inherits_its_context_prices_and_abilities()
    {
        var (catalog, errors) = Compile("  - { name: sonnet, provider: anthropic, model: claude-sonnet-4-5 }");
        Assert.True(KnownModels.Shipped.TryFind("claude-sonnet-4-5", out var known));

        Assert.Empty(errors);
        var sonnet = catalog!.Deployments["sonnet"];
        Assert.Equal(known.Id, sonnet.KnownModel);
        Assert.Equal(known.ContextWindow, sonnet.ContextWindow);
        Assert.Equal(known.MaxOutputTokens, sonnet.MaxOutputTokens);
        Assert.Equal((double)known.Pricing!.Input / 1_000_000, sonnet.Pricing.InputPerToken, 12);
        Assert.Equal((double)known.Pricing.CacheRead!.Value / 1_000_000, sonnet.Pricing.CacheReadPerToken, 12);
        Assert.Equal((double)known.Pricing.CacheWrite!.Value / 1_000_000, sonnet.Pricing.CacheWritePerToken, 12);
        Assert.True(sonnet.Has(Capabilities.Tools | Capabilities.Vision));
        Assert.StartsWith("model catalog (claude-sonnet-4-5)", sonnet.FigureSources["pricing.cacheWrite"], StringComparison.Ordinal);
    }

    [Fact]
    public void What_the_file_states_wins_figure_by_figure()
    {
        var (catalog, errors) = Compile("  - { name: sonnet, provider: anthropic, model: claude-sonnet-4-5, contextWindow: 100000, pricing: { input: 2.5 } }");

        Assert.Empty(errors);
        var sonnet = catalog!.Deployments["sonnet"];
        Assert.Equal(100000, sonnet.ContextWindow);
        Assert.Equal(2.5 / 1_000_000, sonnet.Pricing.InputPerToken, 12);
        Assert.Equal("routing file", sonnet.FigureSources["contextWindow"]);
        Assert.Equal("routing file", sonnet.FigureSources["pricing.input"]);
        Assert.StartsWith("model catalog", sonnet.FigureSources["pricing.output"], StringComparison.Ordinal);
    }

    [Fact]
    public void An_azure_deployment_names_its_model_with_knownModel_and_none_turns_inheritance_off()
    {
        var (catalog, errors) = Compile("""
              - { name: prod-4o, provider: azure, model: my-gpt4o-deployment, knownModel: gpt-4o }
              - { name: plain, provider: anthropic, model: claude-sonnet-4-5, knownModel: none }
            """);

        Assert.Empty(errors);
        Assert.Equal("gpt-4o", catalog!.Deployments["prod-4o"].KnownModel);
        Assert.True(catalog.Deployments["prod-4o"].Pricing.InputPerToken > 0);
        Assert.Null(catalog.Deployments["plain"].KnownModel);
        Assert.Null(catalog.Deployments["plain"].ContextWindow);
        Assert.Equal(0, catalog.Deployments["plain"].Pricing.InputPerToken);
    }

    [Fact]
    public void An_unknown_knownModel_is_an_error_with_its_path()
    {
        var (catalog, errors) = Compile("  - { name: x, provider: azure, model: dep, knownModel: gpt-17-ultra }");

        Assert.Null(catalog);
        Assert.Contains(errors, e => e.Path == "deployments[0].knownModel" && e.Message.Contains("gpt-17-ultra", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Models_and_explain_say_where_each_figure_came_from()
    {
        await using var gateway = await GatewayHost.StartAsync("""
            providers:
              - { name: sim, kind: simulated }
            deployments:
              - { name: mini, provider: sim, model: gpt-4o-mini, pricing: { output: 0.5 } }
            routes:
              - { name: chat, targets: [mini] }
            """);

        using var model = await gateway.Http.GetAsync("v1/models/chat");
        var figures = JsonDocument.Parse(await model.Content.ReadAsStringAsync()).RootElement.GetProperty("deployment_figures")[0];
        using var explain = await gateway.PostAsync("v1/route/explain", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        var candidate = JsonDocument.Parse(await explain.Content.ReadAsStringAsync()).RootElement.GetProperty("candidates")[0];

        Assert.Equal("gpt-4o-mini", figures.GetProperty("known_model").GetString());
        Assert.StartsWith("model catalog (gpt-4o-mini)", figures.GetProperty("sources").GetProperty("pricing.input").GetString(), StringComparison.Ordinal);
        Assert.Equal("routing file", figures.GetProperty("sources").GetProperty("pricing.output").GetString());
        Assert.Equal(0.5, figures.GetProperty("pricing_per_million").GetProperty("output").GetDouble());
        Assert.Equal("routing file", candidate.GetProperty("figures").GetProperty("sources").GetProperty("pricing.output").GetString());
    }
}
