using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;

namespace ModelGateway.Tests.Configuration;

/// <summary>The routing file is checked as a whole; every problem is reported with its path.</summary>
public sealed class ConfigValidationTests : IDisposable
{
    private readonly ServiceProvider _services;

    public ConfigValidationTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    private (GatewayCatalog? Catalog, List<ConfigError> Errors, List<ConfigError> Warnings) Compile(string text)
    {
        var warnings = new List<ConfigError>();
        var document = RoutingConfigLoader.Parse(text, out var errors);
        var catalog = document is null ? null : _services.GetRequiredService<CatalogBuilder>().Build(document, "test", "hash", 1, errors, warnings);
        return (catalog, errors, warnings);
    }

    private const string Valid = """
        providers:
          - name: openai
            kind: openai
            baseUrl: https://api.openai.com/v1
            apiKey: sk-literal-for-test
          - name: azure
            kind: azure-openai
            baseUrl: https://example.openai.azure.com
            apiKey: azure-literal-for-test
          - name: local
            kind: openai-compatible
            baseUrl: http://vllm:8000/v1
        deployments:
          - { name: gpt-4o@openai, provider: openai, model: gpt-4o, contextWindow: 128000, pricing: { input: 2.5, output: 10 } }
          - { name: gpt-4o@azure, provider: azure, model: gpt4o-prod, contextWindow: 128000 }
          - { name: llama@local, provider: local, model: meta-llama/Llama-3.1-8B-Instruct, contextWindow: 8192, capacity: 8, pricing: { perHour: 1.2 } }
        routes:
          - name: gpt-4o
            strategy: priority
            targets: [gpt-4o@azure, gpt-4o@openai]
          - name: chat
            strategy: weighted
            targets:
              - { deployment: gpt-4o@openai, weight: 3 }
              - llama@local
        """;

    [Fact]
    public void A_valid_file_compiles_with_tiers_defaulted_by_kind_and_an_implicit_auto_route()
    {
        var (catalog, errors, _) = Compile(Valid);

        Assert.Empty(errors);
        Assert.NotNull(catalog);
        Assert.Equal(DeploymentTier.Saas, catalog.Providers["openai"].Tier);
        Assert.Equal(DeploymentTier.Paas, catalog.Providers["azure"].Tier);
        Assert.Equal(DeploymentTier.Iaas, catalog.Providers["local"].Tier);
        Assert.Equal([3.0, 1.0], catalog.Routes["chat"].Weights);
        Assert.True(catalog.Routes["auto"].IsAuto);
        Assert.Equal(TokenizerKind.O200k, catalog.Deployments["gpt-4o@openai"].Tokenizer);
        Assert.Equal(TokenizerKind.Other, catalog.Deployments["llama@local"].Tokenizer);
        Assert.Equal("\"gpt-4o\"", System.Text.Encoding.UTF8.GetString(catalog.Deployments["gpt-4o@openai"].UpstreamModelJson));
    }

    [Fact]
    public void Every_error_is_reported_with_its_path_not_just_the_first()
    {
        var (catalog, errors, _) = Compile("""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: "not a url" }
              - { name: p, kind: anthropic-ish, baseUrl: http://x }
            deployments:
              - { name: d, provider: nope, model: m }
              - { name: e, provider: p, model: m, contextWindow: -1, capabilities: [chat, telepathy] }
            routes:
              - { name: r, strategy: fastest, targets: [e, x] }
              - { name: s, targets: [] }
              - { name: t, targets: [e], slo: { ttft: soon } }
            """);

        Assert.Null(catalog);
        var messages = errors.Select(e => e.ToString()).ToList();
        Assert.Contains("providers[0].baseUrl: 'not a url' is not an absolute http(s) URL", messages);
        Assert.Contains("providers[1].name: duplicate provider 'p' (first defined at providers[0])", messages);
        Assert.Contains(messages, m => m.StartsWith("providers[1].kind: unknown kind 'anthropic-ish'", StringComparison.Ordinal));
        Assert.Contains("deployments[0].provider: unknown provider 'nope'", messages);
        Assert.Contains("deployments[1].contextWindow: must be greater than 0", messages);
        Assert.Contains(messages, m => m.StartsWith("deployments[1].capabilities[1]: unknown capability 'telepathy'", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("routes[0].strategy: unknown strategy 'fastest'", StringComparison.Ordinal));
        Assert.Contains("routes[0].targets[1]: unknown deployment 'x'", messages);
        Assert.Contains("routes[1].targets: list at least one deployment", messages);
        Assert.Contains(messages, m => m.StartsWith("routes[2].slo.ttft: 'soon' is not a duration", StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_fields_and_wrong_types_name_the_field()
    {
        var (_, unknown, _) = Compile("""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: http://x/v1, baseURL: http://y }
            """);
        var (_, wrongType, _) = Compile("""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: http://x/v1 }
            deployments:
              - { name: d, provider: p, model: m, contextWindow: large }
            """);

        Assert.Equal("providers[0].baseURL", Assert.Single(unknown).Path);
        Assert.Contains("unknown field", unknown[0].Message, StringComparison.Ordinal);
        Assert.Equal("deployments[0].contextWindow", Assert.Single(wrongType).Path);
        Assert.Contains("whole number", wrongType[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Broken_yaml_reports_line_and_column()
    {
        var (_, errors, _) = Compile("providers:\n  - name: p\n   kind: [unclosed\n");

        var error = Assert.Single(errors);
        Assert.StartsWith("line ", error.Path, StringComparison.Ordinal);
        Assert.Contains("invalid YAML", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_files_are_accepted_too()
    {
        var (catalog, errors, _) = Compile("""
            {
              "providers": [{ "name": "p", "kind": "simulated" }],
              "deployments": [{ "name": "d", "provider": "p" }],
              "routes": [{ "name": "m", "targets": ["d"] }]
            }
            """);

        Assert.Empty(errors);
        Assert.Equal("d", catalog!.Routes["m"].Targets[0].Name);
    }

    [Fact]
    public void Credentials_come_from_the_environment_and_a_missing_variable_is_an_error_without_the_value()
    {
        var variable = "MODELGATEWAY_TEST_KEY_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, "sk-from-environment-123");
        try
        {
            var (catalog, errors, warnings) = Compile($$"""
                providers:
                  - { name: ok, kind: openai, baseUrl: https://api.openai.com/v1, apiKey: "env:{{variable}}" }
                  - { name: missing, kind: openai, baseUrl: https://api.openai.com/v1, apiKey: "env:{{variable}}_UNSET" }
                deployments:
                  - { name: d, provider: ok, model: gpt-4o }
                """);

            Assert.Null(catalog);
            var error = Assert.Single(errors);
            Assert.Equal("providers[1].apiKey", error.Path);
            Assert.Equal($"environment variable '{variable}_UNSET' is not set", error.Message);
            Assert.Empty(warnings);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Fact]
    public void A_literal_key_is_accepted_with_a_warning_and_its_text_never_shows()
    {
        var (catalog, errors, warnings) = Compile(Valid);

        Assert.Empty(errors);
        Assert.Contains(warnings, w => w.Path == "providers[0].apiKey");
        Assert.DoesNotContain(warnings, w => w.Message.Contains("sk-literal-for-test", StringComparison.Ordinal));
        Assert.Equal("***", catalog!.Providers["openai"].ApiKey!.ToString());
    }

    [Fact]
    public void Durations_accept_units_and_combinations()
    {
        Assert.True(Durations.TryParse("800ms", out var a));
        Assert.True(Durations.TryParse("1m30s", out var b));
        Assert.True(Durations.TryParse("2h", out var c));
        Assert.False(Durations.TryParse("10", out _));
        Assert.False(Durations.TryParse("5 minutes", out _));

        Assert.Equal(TimeSpan.FromMilliseconds(800), a);
        Assert.Equal(TimeSpan.FromSeconds(90), b);
        Assert.Equal(TimeSpan.FromHours(2), c);
    }

    [Fact]
    public void The_built_in_demo_is_valid_and_spans_all_three_tiers()
    {
        using var stream = typeof(GatewayApplication).Assembly.GetManifestResourceStream("ModelGateway.demo.yaml")!;
        using var reader = new StreamReader(stream);
        var (catalog, errors, _) = Compile(reader.ReadToEnd());

        Assert.Empty(errors);
        Assert.Equal([DeploymentTier.Iaas, DeploymentTier.Paas, DeploymentTier.Saas], catalog!.Providers.Values.Select(p => p.Tier).Distinct().Order());
        Assert.All(catalog.Providers.Values, p => Assert.Equal("simulated", p.Kind));
    }
}
