using System.Text;
using ModelGateway.Catalog;
using ModelGateway.Configuration;

namespace ModelGateway.Tests.Catalog;

/// <summary>
/// The catalog shipped in the binary loads, every row is sane, lookups find models by the names
/// deployments use for them, and a bad file is refused with every problem named.
/// </summary>
public sealed class KnownModelsTests
{
    private static KnownModels Catalog => KnownModels.Shipped;

    [Fact]
    public void The_shipped_catalog_loads_without_errors()
    {
        using var stream = typeof(KnownModels).Assembly.GetManifestResourceStream(KnownModels.ResourceName);
        Assert.NotNull(stream);
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var errors = new List<string>();

        var catalog = KnownModels.Load(buffer.ToArray(), errors);

        Assert.True(errors.Count == 0, "known-models.json:" + Environment.NewLine + string.Join(Environment.NewLine, errors));
        Assert.NotNull(catalog);
        Assert.NotEmpty(catalog.Models);
    }

    [Fact]
    public void Every_row_has_positive_limits_and_prices_and_an_output_limit_within_its_window()
    {
        var problems = new List<string>();
        foreach (var model in Catalog.Models)
        {
            if (model.ContextWindow <= 0)
            {
                problems.Add($"{model.Id}: context window {model.ContextWindow}");
            }

            if (model.MaxOutputTokens is { } max && (max <= 0 || max > model.ContextWindow))
            {
                problems.Add($"{model.Id}: max output {max} against window {model.ContextWindow}");
            }

            if (model.Pricing is { } p)
            {
                foreach (var (name, price) in new[] { ("input", (decimal?)p.Input), ("output", p.Output), ("cacheRead", p.CacheRead), ("cacheWrite", p.CacheWrite), ("reasoning", p.Reasoning) })
                {
                    if (price is <= 0)
                    {
                        problems.Add($"{model.Id}: pricing.{name} is {price}");
                    }
                }

                if (p.Output is null && !model.Has("embeddings"))
                {
                    problems.Add($"{model.Id}: a chat model without an output price");
                }
            }
            else if (model.Host != "self-hosted")
            {
                problems.Add($"{model.Id}: no pricing at host {model.Host}");
            }
        }

        Assert.Empty(problems);
    }

    [Fact]
    public void Every_capability_is_one_the_router_or_the_catalog_defines()
    {
        var known = KnownCapabilities.Routing.AddRange(KnownCapabilities.Added);

        var unknown = Catalog.Models.SelectMany(m => m.CapabilityNames.Where(c => !known.Contains(c)).Select(c => $"{m.Id}: {c}")).ToList();

        Assert.Empty(unknown);
        Assert.Equal(["reasoning", "prompt_caching"], KnownCapabilities.Added.ToArray());
    }

    [Fact]
    public void Ids_and_aliases_are_unique_ignoring_case()
    {
        var keys = Catalog.Models.SelectMany(m => m.Aliases.Prepend(m.Id).Select(key => (Key: key, m.Id))).ToList();

        var duplicates = keys.GroupBy(k => k.Key, StringComparer.OrdinalIgnoreCase).Where(g => g.Count() > 1).Select(g => g.Key).ToList();

        Assert.Empty(duplicates);
    }

    [Fact]
    public void Every_family_names_an_https_source_and_a_check_date_no_later_than_the_file()
    {
        Assert.True(Catalog.Checked > new DateOnly(2026, 1, 1));
        foreach (var family in Catalog.Families)
        {
            Assert.StartsWith("https://", family.Source, StringComparison.Ordinal);
            Assert.All(family.SeenAt, url => Assert.StartsWith("https://", url, StringComparison.Ordinal));
            Assert.True(family.Checked <= Catalog.Checked, $"{family.Host}/{family.Name} checked {family.Checked}, after the file's {Catalog.Checked}");
        }
    }

    [Theory]
    [InlineData("gpt-4o", "gpt-4o", nameof(KnownModelMatch.Id))]
    [InlineData("GPT-4O-MINI", "gpt-4o-mini", nameof(KnownModelMatch.Id))]
    [InlineData("gpt-4o-2024-08-06", "gpt-4o", nameof(KnownModelMatch.Alias))]
    [InlineData("gpt-4o-2024-05-13", "gpt-4o-2024-05-13", nameof(KnownModelMatch.Id))]
    [InlineData("gpt-4.1-mini-2026-03-02", "gpt-4.1-mini", nameof(KnownModelMatch.Snapshot))]
    [InlineData("gpt-35-turbo", "gpt-3.5-turbo", nameof(KnownModelMatch.Alias))]
    [InlineData("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", nameof(KnownModelMatch.Alias))]
    [InlineData("claude-sonnet-4-5@20250929", "claude-sonnet-4-5", nameof(KnownModelMatch.Alias))]
    [InlineData("claude-haiku-4-5@20260101", "claude-haiku-4-5", nameof(KnownModelMatch.Snapshot))]
    [InlineData("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", nameof(KnownModelMatch.Alias))]
    [InlineData("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", nameof(KnownModelMatch.InferenceProfile))]
    [InlineData("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5", nameof(KnownModelMatch.InferenceProfile))]
    [InlineData("apac.anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5", nameof(KnownModelMatch.InferenceProfile))]
    [InlineData("global.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6", nameof(KnownModelMatch.InferenceProfile))]
    [InlineData("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5", nameof(KnownModelMatch.InferenceProfile))]
    [InlineData("anthropic.claude-opus-4-6-v1:0", "claude-opus-4-6", nameof(KnownModelMatch.Snapshot))]
    [InlineData("us.meta.llama3-3-70b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0", nameof(KnownModelMatch.InferenceProfile))]
    [InlineData("gemini-2.5-flash-001", "gemini-2.5-flash", nameof(KnownModelMatch.Snapshot))]
    [InlineData("mistral-large-latest", "mistral-large-2512", nameof(KnownModelMatch.Alias))]
    [InlineData("llama3.1:8b", "meta-llama/Llama-3.1-8B-Instruct", nameof(KnownModelMatch.Alias))]
    [InlineData("openai/gpt-4o", "gpt-4o", nameof(KnownModelMatch.Alias))]
    [InlineData("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5", nameof(KnownModelMatch.Alias))]
    [InlineData("llama-3.3-70b-versatile", "llama-3.3-70b-versatile", nameof(KnownModelMatch.Id))]
    [InlineData("accounts/fireworks/models/llama-v3p3-70b-instruct", "accounts/fireworks/models/llama-v3p3-70b-instruct", nameof(KnownModelMatch.Id))]
    [InlineData("  deepseek-chat ", "deepseek-chat", nameof(KnownModelMatch.Id))]
    public void A_model_is_found_by_the_names_deployments_use_for_it(string modelId, string expectedId, string expectedMatch)
    {
        Assert.True(Catalog.TryFind(modelId, out var model, out var match), $"'{modelId}' was not found");

        Assert.Equal(expectedId, model.Id);
        Assert.Equal(Enum.Parse<KnownModelMatch>(expectedMatch), match);
    }

    [Theory]
    [InlineData("gpt-4o-mini-prod")]                       // an Azure deployment name says nothing about its model
    [InlineData("claude-sonnet-4-5-2025-09-29")]           // OpenAI's date form on an Anthropic id
    [InlineData("gpt-4o-20240806")]                        // Anthropic's date form on an OpenAI id
    [InlineData("mistral-large")]
    [InlineData("us.gpt-4o")]                              // a profile prefix only applies to Bedrock ids (vendor.model)
    [InlineData("arn:aws:bedrock:us-east-1:123456789012:inference-profile/")]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(null)]
    public void An_unknown_model_is_not_guessed(string? modelId)
    {
        Assert.False(Catalog.TryFind(modelId, out var model));
        Assert.Null(model);
    }

    [Fact]
    public void Known_good_figures_of_a_few_models_are_as_their_vendors_publish_them()
    {
        var gpt4o = Find("gpt-4o");
        Assert.Equal((128000, 16384), (gpt4o.ContextWindow, gpt4o.MaxOutputTokens));
        Assert.Equal(new KnownPricing(2.50m, 10.00m, 1.25m, null, null), gpt4o.Pricing);
        Assert.Equal(TokenizerKind.O200k, gpt4o.Tokenizer);
        Assert.Equal(Capabilities.Chat | Capabilities.Tools | Capabilities.Vision | Capabilities.JsonSchema, gpt4o.Capabilities);
        Assert.True(gpt4o.Has("prompt_caching"));
        Assert.False(gpt4o.Has("reasoning"));

        var sonnet = Find("claude-sonnet-4-5");
        Assert.Equal(new KnownPricing(3.00m, 15.00m, 0.30m, 3.75m, null), sonnet.Pricing);
        Assert.Equal(TokenizerKind.Other, sonnet.Tokenizer);
        Assert.True(sonnet.Capabilities.HasFlag(Capabilities.Prefill));
        Assert.Equal("anthropic", sonnet.Vendor);

        var haiku = Find("claude-haiku-4-5");
        Assert.Equal((200000, 64000), (haiku.ContextWindow, haiku.MaxOutputTokens));

        var embedding = Find("text-embedding-3-small");
        Assert.Equal(Capabilities.Embeddings, embedding.Capabilities);
        Assert.Equal(TokenizerKind.Cl100k, embedding.Tokenizer);
        Assert.Equal(new KnownPricing(0.02m, null, null, null, null), embedding.Pricing);
        Assert.Null(embedding.MaxOutputTokens);

        var llama = Find("meta-llama/Llama-3.3-70B-Instruct");
        Assert.Null(llama.Pricing);
        Assert.Equal("self-hosted", llama.Host);
    }

    [Fact]
    public void Anthropic_cache_prices_follow_its_published_multipliers()
    {
        var claude = Catalog.Models.Where(m => m.Vendor == "anthropic").ToList();

        Assert.NotEmpty(claude);
        Assert.All(claude, m =>
        {
            Assert.Equal(m.Pricing!.Input * 1.25m, m.Pricing.CacheWrite);
            Assert.Equal(m.Pricing.Input * 0.1m, m.Pricing.CacheRead);
        });
    }

    [Fact]
    public void The_file_date_and_each_figures_provenance_are_exposed()
    {
        var sonnet55 = Find("claude-sonnet-5-5");
        var opus47 = Find("claude-opus-4-7");

        var write = sonnet55.ProvenanceOf(KnownFigure.CacheWritePrice);
        Assert.Equal(FigureBasis.Vendor, write.Basis);
        Assert.Equal("pricing.cacheWrite", write.FigureName);
        Assert.Equal(sonnet55.Family.Checked, write.Checked);
        Assert.Contains(sonnet55.Family.Source, write.Describe(), StringComparison.Ordinal);
        Assert.Equal(FigureBasis.Derived, opus47.ProvenanceOf(KnownFigure.CacheWritePrice).Basis);
        Assert.Equal(FigureBasis.Secondary, opus47.ProvenanceOf(KnownFigure.MaxOutputTokens).Basis);
        Assert.Equal("6.25", opus47.ValueOf(KnownFigure.CacheWritePrice));
        Assert.Null(opus47.ValueOf(KnownFigure.ReasoningPrice));

        var groq = Find("llama-3.3-70b-versatile").ProvenanceOf(KnownFigure.InputPrice);
        Assert.Equal(FigureBasis.Unverified, groq.Basis);
        Assert.StartsWith("unverified", groq.Describe(), StringComparison.Ordinal);
        Assert.Contains("https://groq.com/pricing", groq.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_row_is_refused_with_every_problem_named()
    {
        const string json = """
            {
              "checked": "2026-12-05", "currency": "USD", "unit": "per 1M tokens",
              "families": [
                {
                  "family": "x", "vendor": "v", "host": "h", "source": "http://example.com/prices", "checked": "2026-12-31",
                  "basis": "vendor", "tokenizer": "o200k", "capabilities": ["chat"],
                  "models": [
                    { "id": "a", "contextWindow": 1000, "maxOutputTokens": 2000, "pricing": { "input": -1, "output": 1 } },
                    { "id": "b", "aliases": ["A"], "contextWindow": 1000, "pricing": { "input": 1, "output": 2, "cacheRead": 3 }, "capabilities": ["chat", "function_calling"] },
                    { "id": "c", "contextWindow": 0, "pricing": { "input": 1, "output": 2 }, "tokenizer": "llama", "figures": { "pricing.cacheWrite": "derived" } },
                    { "id": "us.vendor.model", "contextWindow": 10, "pricing": { "input": 1, "output": 1 }, "figures": { "contextWindow": "guessed" } }
                  ]
                }
              ]
            }
            """;
        var errors = new List<string>();

        var catalog = KnownModels.Load(Encoding.UTF8.GetBytes(json), errors);

        Assert.Null(catalog);
        string[] expected =
        [
            "families[0].source: 'http://example.com/prices' is not an absolute https URL",
            "families[0].checked: 2026-12-31 is later than the file's date (2026-12-05)",
            "families[0].models[0] (a).maxOutputTokens: 2000 must be greater than 0 and at most the context window (1000)",
            "families[0].models[0] (a).pricing.input: -1 must be greater than 0",
            "families[0].models[1] (b).capabilities[1]: unknown capability 'function_calling'",
            "families[0].models[1] (b).pricing.cacheRead: 3 is not below the input price (1)",
            "families[0].models[2] (c).contextWindow: required, greater than 0",
            "families[0].models[2] (c).tokenizer: unknown tokenizer 'llama'",
            "families[0].models[2] (c).figures: gives the basis of pricing.cacheWrite, which the row does not have",
            "families[0].models[3] (us.vendor.model).figures.contextWindow: unknown basis 'guessed'",
        ];
        foreach (var error in expected)
        {
            Assert.Contains(errors, e => e.StartsWith(error, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Ids_and_aliases_that_collide_are_refused()
    {
        const string json = """
            {
              "checked": "2026-12-05", "currency": "USD", "unit": "per 1M tokens",
              "families": [
                {
                  "family": "x", "vendor": "v", "host": "h", "source": "https://example.com/prices", "checked": "2026-12-05",
                  "basis": "vendor", "tokenizer": "other", "capabilities": ["chat"],
                  "models": [
                    { "id": "m-1", "aliases": ["vendor.m-1-v1:0"], "contextWindow": 10, "pricing": { "input": 1, "output": 1 } },
                    { "id": "M-1", "contextWindow": 10, "pricing": { "input": 1, "output": 1 } },
                    { "id": "m-2", "aliases": ["vendor.m-1-v2:0", "us.vendor.m-2"], "contextWindow": 10, "pricing": { "input": 1, "output": 1 } }
                  ]
                }
              ]
            }
            """;
        var errors = new List<string>();

        Assert.Null(KnownModels.Load(Encoding.UTF8.GetBytes(json), errors));

        Assert.Contains(errors, e => e.StartsWith("families[0].models[1].id: 'M-1' is already m-1's", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("families[0].models[2].aliases[0]: without its Bedrock version", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("families[0].models[2].aliases[1]: 'us.vendor.m-2' starts with a Bedrock inference-profile prefix", StringComparison.Ordinal));
    }

    [Fact]
    public void A_misspelt_field_is_refused_rather_than_ignored()
    {
        const string json = """{ "checked": "2026-12-05", "currency": "USD", "unit": "per 1M tokens", "families": [ { "family": "x", "contextwindow": 5 } ] }""";
        var errors = new List<string>();

        Assert.Null(KnownModels.Load(Encoding.UTF8.GetBytes(json), errors));

        var error = Assert.Single(errors);
        Assert.Contains("contextwindow", error, StringComparison.Ordinal);
    }

    private static KnownModel Find(string id)
    {
        Assert.True(Catalog.TryFind(id, out var model, out var match), $"{id} is not in the catalog");
        Assert.Equal(KnownModelMatch.Id, match);
        return model;
    }
}
