using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;
using ModelGateway.Providers.Bedrock;

namespace ModelGateway.Tests.Providers;

/// <summary>A <c>kind: bedrock</c> entry is checked as a whole, every problem with its path, before anything is sent.</summary>
public sealed class BedrockConfigTests : IDisposable
{
    private readonly ServiceProvider _services;

    public BedrockConfigTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    private (GatewayCatalog? Catalog, List<ConfigError> Errors, List<ConfigError> Warnings) Compile(string providers)
    {
        var text = $$"""
            providers:
            {{providers}}
            deployments:
              - { name: claude, provider: aws, model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0" }
            routes:
              - { name: claude, targets: [claude] }
            """;
        var warnings = new List<ConfigError>();
        var document = RoutingConfigLoader.Parse(text, out var errors);
        var catalog = document is null ? null : _services.GetRequiredService<CatalogBuilder>().Build(document, "test", "hash", 1, errors, warnings);
        return (catalog, errors, warnings);
    }

    [Fact]
    public void A_region_alone_reaches_the_regional_endpoint_with_the_default_credential_chain()
    {
        var (catalog, errors, warnings) = Compile("  - { name: aws, kind: bedrock, region: eu-central-1 }");

        Assert.Empty(errors);
        Assert.Empty(warnings);
        var provider = catalog!.Deployments["claude"].Provider;
        Assert.Equal(new Uri("https://bedrock-runtime.eu-central-1.amazonaws.com"), provider.BaseUri);
        Assert.Equal(DeploymentTier.Paas, provider.Tier);
        var settings = provider.SettingsAs<BedrockSettings>();
        Assert.Equal("eu-central-1", settings.Region);
        Assert.Equal(AwsCredentialSource.Chain, settings.Source);
    }

    [Fact]
    public void Keys_come_from_secrets_and_never_show_in_the_compiled_settings_text()
    {
        Environment.SetEnvironmentVariable("BEDROCK_CONFIG_TEST_SECRET", "configTestSecret/Aa1Bb2Cc3Dd4");
        try
        {
            var (catalog, errors, warnings) = Compile("  - { name: aws, kind: bedrock, region: us-east-1, accessKeyId: AKIAGATEWAYCONFIG001, secretAccessKey: env:BEDROCK_CONFIG_TEST_SECRET }");

            Assert.Empty(errors);
            Assert.Empty(warnings);
            var settings = catalog!.Deployments["claude"].Provider.SettingsAs<BedrockSettings>();
            Assert.Equal(AwsCredentialSource.Keys, settings.Source);
            Assert.Equal("configTestSecret/Aa1Bb2Cc3Dd4", settings.SecretAccessKey!.Value);
            Assert.DoesNotContain("configTestSecret", settings.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("BEDROCK_CONFIG_TEST_SECRET", null);
        }
    }

    [Fact]
    public void Every_problem_of_a_bedrock_entry_is_reported_with_its_path()
    {
        var (catalog, errors, _) = Compile("""
              - { name: aws, kind: bedrock, apiKey: sk-nope, accessKeyId: AKIAGATEWAYCONFIG001, profile: dev }
              - { name: aws2, kind: bedrock, region: "us east 1", secretAccessKey: env:SOME_SECRET_THAT_IS_NOT_SET }
              - { name: oai, kind: openai, apiKey: sk-test, region: us-east-1, profile: dev, accessKeyId: AKIAGATEWAYCONFIG001 }
            """);

        Assert.Null(catalog);
        var byPath = errors.Select(e => e.Path).ToList();
        Assert.Contains("providers[0].region", byPath);
        Assert.Contains("providers[0].apiKey", byPath);
        Assert.Contains("providers[0].secretAccessKey", byPath);
        Assert.Contains("providers[0].profile", byPath);
        Assert.Contains("providers[1].region", byPath);
        Assert.Contains("providers[1].accessKeyId", byPath);
        Assert.Contains("providers[1].secretAccessKey", byPath);
        Assert.Contains("providers[2].profile", byPath);
        Assert.Contains("providers[2].accessKeyId", byPath);
        Assert.DoesNotContain(errors, e => e.Path.EndsWith(".baseUrl", StringComparison.Ordinal));
    }

    [Fact]
    public void A_bedrock_deployment_cannot_declare_embeddings()
    {
        var text = """
            providers:
              - { name: aws, kind: bedrock, region: us-east-1 }
            deployments:
              - { name: titan, provider: aws, model: amazon.titan-embed-text-v2:0, capabilities: [embeddings] }
            """;
        var warnings = new List<ConfigError>();
        var document = RoutingConfigLoader.Parse(text, out var errors);
        _services.GetRequiredService<CatalogBuilder>().Build(document!, "test", "hash", 1, errors, warnings);

        Assert.Contains(errors, e => e.Path == "deployments[0].capabilities[0]");
    }
}
