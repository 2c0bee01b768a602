using System.Globalization;
using ModelGateway.Catalog;
using ModelGateway.Configuration;

namespace ModelGateway.Tests.Catalog;

/// <summary>
/// The OpenAI-compatible SaaS presets in deploy/examples state the model catalog's figures, so the two
/// cannot drift apart. (ExamplesTests compiles every example under the real validator.)
/// </summary>
public sealed class SaasPresetsTests
{
    private static readonly string ExamplesDirectory = Path.Combine(FindRepositoryRoot(), "deploy", "examples");

    private static readonly string[] PresetFiles =
        ["saas-deepseek.yaml", "saas-fireworks.yaml", "saas-groq.yaml", "saas-mistral.yaml", "saas-openrouter.yaml", "saas-together.yaml", "saas-xai.yaml"];

    public static TheoryData<string> Presets() => new(PresetFiles);

    [Fact]
    public void Every_saas_preset_is_listed_here()
    {
        var onDisk = Directory.GetFiles(ExamplesDirectory, "saas-*.yaml").Select(Path.GetFileName).Order(StringComparer.Ordinal);

        Assert.Equal(PresetFiles, onDisk);
    }

    [Theory]
    [MemberData(nameof(Presets))]
    public void A_preset_is_an_openai_compatible_saas_provider_with_a_key_from_the_environment(string file)
    {
        var document = Parse(file);

        var provider = Assert.Single(document.Providers!);
        Assert.Equal("openai-compatible", provider.Kind);
        Assert.Equal("saas", provider.Tier);
        Assert.StartsWith("https://", provider.BaseUrl, StringComparison.Ordinal);
        Assert.StartsWith("env:", provider.ApiKey, StringComparison.Ordinal);
        Assert.NotEmpty(document.Routes!);
    }

    [Theory]
    [MemberData(nameof(Presets))]
    public void A_presets_deployments_state_the_catalogs_figures(string file)
    {
        var problems = new List<string>();
        foreach (var deployment in Parse(file).Deployments!)
        {
            var where = $"{file}: {deployment.Name}";
            if (!KnownModels.Shipped.TryFind(deployment.Model, out var known))
            {
                problems.Add($"{where}: '{deployment.Model}' is not in the catalog");
                continue;
            }

            Same(where, "contextWindow", deployment.ContextWindow, known.ContextWindow, problems);
            Same(where, "maxOutputTokens", deployment.MaxOutputTokens, known.MaxOutputTokens, problems);
            Same(where, "pricing.input", deployment.Pricing?.Input, known.Pricing?.Input, problems);
            Same(where, "pricing.output", deployment.Pricing?.Output, known.Pricing?.Output, problems);
            Same(where, "pricing.cachedInput", deployment.Pricing?.CachedInput, known.Pricing?.CacheRead, problems);
            if (deployment.Tokenizer is { } tokenizer && tokenizer != KnownModels.TokenizerName(known.Tokenizer))
            {
                problems.Add($"{where}: tokenizer {tokenizer}, the catalog says {KnownModels.TokenizerName(known.Tokenizer)}");
            }

            // A deployment may leave out what its host cannot do (prefill through OpenRouter), never add to it.
            problems.AddRange((deployment.Capabilities ?? ["chat"]).Where(c => !known.Has(c)).Select(c => $"{where}: capability {c} is not in the catalog's row"));
        }

        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    private static void Same<T>(string where, string field, T? stated, T? catalog, List<string> problems)
        where T : struct
    {
        if (!Nullable.Equals(stated, catalog))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{where}: {field} is {stated?.ToString() ?? "not stated"}, the catalog says {catalog?.ToString() ?? "nothing"}"));
        }
    }

    private static RoutingConfigDocument Parse(string file)
    {
        var document = RoutingConfigLoader.Parse(File.ReadAllText(Path.Combine(ExamplesDirectory, file)), out var errors);
        Assert.Empty(errors);
        return Assert.IsType<RoutingConfigDocument>(document);
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ModelGateway.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No ModelGateway.sln above {AppContext.BaseDirectory}.");
    }
}
