using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Configuration;

/// <summary>
/// Any value in the routing file can come from the environment (<c>${NAME}</c>, <c>${NAME:-default}</c>),
/// so the same file serves staging and production; a missing variable is a config error with its path.
/// </summary>
public sealed class EnvironmentValuesTests : IDisposable
{
    private readonly ServiceProvider _services;

    public EnvironmentValuesTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    private const string TwoEnvironments = """
        providers:
          - name: upstream
            kind: openai-compatible
            baseUrl: ${UPSTREAM_URL}
            region: ${REGION:-eu-west}
            apiKey: ${UPSTREAM_KEY}
            headers:
              X-Environment: ${DEPLOY_ENV}
              X-Org: "${ORG_ID}"
        deployments:
          - name: primary
            provider: upstream
            model: ${UPSTREAM_MODEL:-gpt-4o-mini}
            capacity: ${CAPACITY:-4}
            tags: ["env:${DEPLOY_ENV}"]
        routes:
          - { name: chat, targets: [primary] }
        """;

    private (GatewayCatalog? Catalog, List<ConfigError> Errors, List<ConfigError> Warnings) Compile(string text, Dictionary<string, string> environment)
    {
        var warnings = new List<ConfigError>();
        var document = RoutingConfigLoader.Parse(text, name => environment.GetValueOrDefault(name), out var errors);
        var catalog = document is null ? null : _services.GetRequiredService<CatalogBuilder>().Build(document, "test", "hash", 1, errors, warnings);
        return (catalog, errors, warnings);
    }

    [Fact]
    public void Values_are_taken_from_the_environment_with_defaults_and_typed_as_if_written_in_place()
    {
        var (catalog, errors, warnings) = Compile(TwoEnvironments, new()
        {
            ["UPSTREAM_URL"] = "https://staging.example.com/v1",
            ["UPSTREAM_KEY"] = "sk-staging-secret-from-env-0001",
            ["DEPLOY_ENV"] = "staging",
            ["ORG_ID"] = "12345",
            ["CAPACITY"] = "16",
        });

        Assert.Empty(errors);
        Assert.NotNull(catalog);
        var provider = catalog.Providers["upstream"];
        Assert.Equal(new Uri("https://staging.example.com/v1"), provider.BaseUri);
        Assert.Equal("eu-west", provider.Region);
        Assert.Equal("sk-staging-secret-from-env-0001", provider.ApiKey!.Value);
        Assert.Equal(["X-Environment=staging", "X-Org=12345"], provider.ExtraHeaders.Select(h => $"{h.Key}={h.Value.Value}").Order(StringComparer.Ordinal));
        var deployment = catalog.Deployments["primary"];
        Assert.Equal("gpt-4o-mini", deployment.UpstreamModel);
        Assert.Equal(16, deployment.Capacity);
        Assert.Equal(["env:staging"], deployment.Tags);

        // A key from the environment is not "a literal secret in the routing file".
        Assert.Empty(warnings);
    }

    [Fact]
    public void Every_unset_variable_is_an_error_with_its_path_and_no_value_leaks()
    {
        var (catalog, errors, _) = Compile(TwoEnvironments, new() { ["UPSTREAM_KEY"] = "sk-must-not-appear-in-errors-0002" });

        Assert.Null(catalog);
        var messages = errors.Select(e => e.ToString()).ToList();
        Assert.Contains("providers[0].baseUrl: environment variable 'UPSTREAM_URL' is not set (give a default with ${UPSTREAM_URL:-default})", messages);
        Assert.Contains(messages, m => m.StartsWith("providers[0].headers.X-Environment: environment variable 'DEPLOY_ENV' is not set", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("providers[0].headers.X-Org: environment variable 'ORG_ID' is not set", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("deployments[0].tags[0]: environment variable 'DEPLOY_ENV' is not set", StringComparison.Ordinal));
        Assert.DoesNotContain(messages, m => m.Contains("sk-must-not-appear", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("baseUrl: ${UPSTREAM_URL", "providers[0].baseUrl: '${' without a closing '}'")]
    [InlineData("baseUrl: http://${BAD-NAME}/v1", "providers[0].baseUrl: '${BAD-NAME}' is not a variable reference")]
    [InlineData("baseUrl: ${A:-${B}}", "providers[0].baseUrl: the default of 'A' holds another ${...}")]
    public void A_malformed_reference_is_an_error_with_its_path(string line, string expected)
    {
        var (_, errors, _) = Compile($$"""
            providers:
              - name: p
                kind: openai-compatible
                {{line}}
            deployments:
              - { name: d, provider: p, model: m }
            routes:
              - { name: r, targets: [d] }
            """, []);

        Assert.Contains(errors, e => e.ToString().StartsWith(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void A_literal_dollar_brace_is_written_with_two_dollars_and_other_dollars_stay()
    {
        var (catalog, errors, _) = Compile("""
            providers:
              - name: p
                kind: openai-compatible
                baseUrl: http://localhost:8000/v1
                headers:
                  X-Template: "$${user} costs $5"
            deployments:
              - { name: d, provider: p, model: m }
            routes:
              - { name: r, targets: [d] }
            """, []);

        Assert.Empty(errors);
        Assert.Equal("${user} costs $5", catalog!.Providers["p"].ExtraHeaders.Single().Value.Value);
    }

    [Fact]
    public void A_json_routing_file_takes_values_from_the_environment_too()
    {
        var (catalog, errors, _) = Compile("""
            {
              // JSON files allow comments, as before.
              "providers": [ { "name": "p", "kind": "openai-compatible", "baseUrl": "http://${HOST:-localhost}:${PORT}/v1" } ],
              "deployments": [ { "name": "d", "provider": "p", "model": "m" } ],
              "routes": [ { "name": "r", "targets": ["d"] } ],
            }
            """, new() { ["PORT"] = "8001" });

        Assert.Empty(errors);
        Assert.Equal(new Uri("http://localhost:8001/v1"), catalog!.Providers["p"].BaseUri);
    }

    [Fact]
    public async Task The_same_file_serves_two_environments()
    {
        await using var staging = await FakeUpstreamServer.StartAsync();
        await using var production = await FakeUpstreamServer.StartAsync();
        var directory = Directory.CreateTempSubdirectory("modelgateway-env-").FullName;
        var config = Path.Combine(directory, "routing.yaml");
        await File.WriteAllTextAsync(config, TwoEnvironments);
        try
        {
            await using var stagingGateway = await GatewayProcess.StartAsync(config, new Dictionary<string, string>(), Environment(staging, "staging", "sk-staging-key-0003"));
            await using var productionGateway = await GatewayProcess.StartAsync(config, new Dictionary<string, string>(), Environment(production, "production", "sk-production-key-0004"));

            foreach (var gateway in new[] { stagingGateway, productionGateway })
            {
                using var response = await gateway.Http.PostAsync("v1/chat/completions", GatewayHost.Json("""{"model":"chat","messages":[{"role":"user","content":"hi"}]}"""));
                Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            }

            var toStaging = Assert.Single(staging.Requests);
            var toProduction = Assert.Single(production.Requests);
            Assert.Equal("staging", toStaging.Headers["X-Environment"]);
            Assert.Equal("production", toProduction.Headers["X-Environment"]);
            Assert.Equal("Bearer sk-staging-key-0003", toStaging.Headers["Authorization"]);
            Assert.Equal("Bearer sk-production-key-0004", toProduction.Headers["Authorization"]);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static Dictionary<string, string> Environment(FakeUpstreamServer upstream, string name, string key) => new()
    {
        ["UPSTREAM_URL"] = upstream.OpenAIBaseUrl,
        ["UPSTREAM_KEY"] = key,
        ["DEPLOY_ENV"] = name,
        ["ORG_ID"] = "org-" + name,
    };
}
