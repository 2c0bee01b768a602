using System.Collections.Immutable;
using System.Globalization;
using ModelGateway.Configuration;

namespace ModelGateway.Catalog;

/// <summary>
/// One model as the catalog knows it: limits, list prices and abilities at one host, and where each
/// figure came from. A deployment that names it inherits these; anything the deployment states wins.
/// </summary>
internal sealed record KnownModel
{
    /// <summary>The id the host's API takes (for Anthropic, the undated alias).</summary>
    public required string Id { get; init; }

    /// <summary>Other ids of the same model at the same price: dated snapshots, Bedrock, Vertex, Azure, OpenRouter and Ollama names.</summary>
    public required ImmutableArray<string> Aliases { get; init; }

    public required KnownModelFamily Family { get; init; }

    /// <summary>Tokens the model accepts, input plus output.</summary>
    public required int ContextWindow { get; init; }

    /// <summary>Largest <c>max_tokens</c> the host accepts; null when the host states no separate limit.</summary>
    public required int? MaxOutputTokens { get; init; }

    /// <summary>List prices; null for open-weight models listed without a host (you pay for the hardware).</summary>
    public required KnownPricing? Pricing { get; init; }

    /// <summary>Every capability name the row lists, including ones the router has no flag for yet.</summary>
    public required ImmutableArray<string> CapabilityNames { get; init; }

    /// <summary>The router's capability flags for the names it knows (<see cref="KnownCapabilities.Routing"/>).</summary>
    public required Capabilities Capabilities { get; init; }

    public required TokenizerKind Tokenizer { get; init; }

    /// <summary>What an admin should know about this row (tiered prices, moving aliases…).</summary>
    public required string? Note { get; init; }

    /// <summary>The basis of each figure, indexed by <see cref="KnownFigure"/>.</summary>
    internal required ImmutableArray<FigureBasis> Bases { get; init; }

    public string Vendor => Family.Vendor;

    public string Host => Family.Host;

    public bool Has(string capability) => CapabilityNames.IndexOf(capability) >= 0;

    /// <summary>Where <paramref name="figure"/> came from: the page, the day it was checked, and how sure the catalog is.</summary>
    public FigureProvenance ProvenanceOf(KnownFigure figure)
        => new(figure, Bases[(int)figure], Family.Source, Family.SeenAt, Family.Checked);

    /// <summary>The figure's value as text (<c>"128000"</c>, <c>"2.50"</c>), or null when the row does not have it.</summary>
    public string? ValueOf(KnownFigure figure) => figure switch
    {
        KnownFigure.ContextWindow => ContextWindow.ToString(CultureInfo.InvariantCulture),
        KnownFigure.MaxOutputTokens => MaxOutputTokens?.ToString(CultureInfo.InvariantCulture),
        KnownFigure.InputPrice => Pricing?.Input.ToString(CultureInfo.InvariantCulture),
        KnownFigure.OutputPrice => Pricing?.Output?.ToString(CultureInfo.InvariantCulture),
        KnownFigure.CacheReadPrice => Pricing?.CacheRead?.ToString(CultureInfo.InvariantCulture),
        KnownFigure.CacheWritePrice => Pricing?.CacheWrite?.ToString(CultureInfo.InvariantCulture),
        KnownFigure.ReasoningPrice => Pricing?.Reasoning?.ToString(CultureInfo.InvariantCulture),
        KnownFigure.Capabilities => string.Join(", ", CapabilityNames),
        KnownFigure.Tokenizer => KnownModels.TokenizerName(Tokenizer),
        _ => null,
    };
}

/// <summary>List prices in USD per one million tokens, as vendors publish them.</summary>
/// <param name="Input">Uncached input tokens.</param>
/// <param name="Output">Output tokens, reasoning included unless <paramref name="Reasoning"/> says otherwise; null for embedding models.</param>
/// <param name="CacheRead">Input tokens read from the provider's prompt cache; null when the host gives no discount.</param>
/// <param name="CacheWrite">Input tokens written to the prompt cache (Anthropic: the 5-minute write); null when writes cost the input price.</param>
/// <param name="Reasoning">Reasoning tokens, only where a host prices them differently from output.</param>
internal sealed record KnownPricing(decimal Input, decimal? Output, decimal? CacheRead, decimal? CacheWrite, decimal? Reasoning);

/// <summary>A vendor's model family at one host, and the page its figures were checked against.</summary>
internal sealed record KnownModelFamily
{
    /// <summary>The family's name (<c>gpt-4o</c>, <c>claude</c>, <c>llama</c>).</summary>
    public required string Name { get; init; }

    /// <summary>Who made the models (<c>openai</c>, <c>anthropic</c>, <c>meta</c>…).</summary>
    public required string Vendor { get; init; }

    /// <summary>Whose API and price list the rows describe (<c>openai</c>, <c>groq</c>, <c>bedrock</c>, or <c>self-hosted</c>).</summary>
    public required string Host { get; init; }

    /// <summary>The vendor's own page for these figures: where an admin checks them.</summary>
    public required string Source { get; init; }

    /// <summary>Pages the figures were actually read from when the vendor's page itself was not at hand.</summary>
    public required ImmutableArray<string> SeenAt { get; init; }

    /// <summary>The day the figures were checked.</summary>
    public required DateOnly Checked { get; init; }

    /// <summary>Date suffixes the family's snapshot ids use (<see cref="SnapshotSuffix"/>).</summary>
    public required ImmutableArray<string> SnapshotSuffixes { get; init; }

    public required ImmutableArray<string> Notes { get; init; }
}

/// <summary>A figure of a catalog row whose provenance can be asked for.</summary>
internal enum KnownFigure
{
    ContextWindow,
    MaxOutputTokens,
    InputPrice,
    OutputPrice,
    CacheReadPrice,
    CacheWritePrice,
    ReasoningPrice,
    Capabilities,
    Tokenizer,
}

/// <summary>How a figure was established.</summary>
internal enum FigureBasis
{
    /// <summary>Read on the vendor's (or host's) own page on the checked date.</summary>
    Vendor,

    /// <summary>Read on another page that cites the vendor's (listed in <see cref="KnownModelFamily.SeenAt"/>).</summary>
    Secondary,

    /// <summary>Computed from a figure above by the vendor's published rule (Anthropic: cache write 1.25 × input, read 0.1 × input).</summary>
    Derived,

    /// <summary>Not confirmed on the checked date: the vendor's earlier published figure. Check it before relying on it.</summary>
    Unverified,
}

/// <summary>Where one figure of one row came from, for <c>/v1/models</c> and <c>explain</c>.</summary>
internal sealed record FigureProvenance(KnownFigure Figure, FigureBasis Basis, string Source, ImmutableArray<string> SeenAt, DateOnly Checked)
{
    /// <summary>The figure's name as written in known-models.json (<c>pricing.cacheRead</c>).</summary>
    public string FigureName => KnownFigures.Name(Figure);

    /// <summary>One line for people: <c>vendor page https://… (checked 2026-12-05)</c>.</summary>
    public string Describe()
    {
        var day = Checked.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        return Basis switch
        {
            FigureBasis.Vendor => $"vendor page {Source} (checked {day})",
            FigureBasis.Secondary => $"{Source} as quoted by {string.Join(", ", SeenAt)} (checked {day})",
            FigureBasis.Derived => $"derived by the vendor's published rule from {Source} (checked {day})",
            _ => $"unverified: not confirmed on {Source} (checked {day})",
        };
    }
}

/// <summary>How <see cref="KnownModels.TryFind(string, out KnownModel, out KnownModelMatch)"/> recognised an id.</summary>
internal enum KnownModelMatch
{
    /// <summary>The row's own id.</summary>
    Id,

    /// <summary>One of the row's aliases.</summary>
    Alias,

    /// <summary>A Bedrock cross-region inference profile (<c>us.</c>, <c>eu.</c>, <c>apac.</c>, <c>global.</c>…) or an inference-profile ARN of an id or alias.</summary>
    InferenceProfile,

    /// <summary>An id or alias with a Bedrock version (<c>-v1:0</c>) or a dated snapshot suffix the family uses (<c>-2024-08-06</c>, <c>-20250929</c>, <c>@20250929</c>).</summary>
    Snapshot,
}

/// <summary>The figure names used in known-models.json.</summary>
internal static class KnownFigures
{
    private static readonly string[] Names =
        ["contextWindow", "maxOutputTokens", "pricing.input", "pricing.output", "pricing.cacheRead", "pricing.cacheWrite", "pricing.reasoning", "capabilities", "tokenizer"];

    public static int Count => Names.Length;

    public static string Name(KnownFigure figure) => Names[(int)figure];

    public static bool TryParse(string name, out KnownFigure figure)
    {
        var index = Array.IndexOf(Names, name);
        figure = (KnownFigure)Math.Max(index, 0);
        return index >= 0;
    }
}

/// <summary>The capability vocabulary of the catalog.</summary>
internal static class KnownCapabilities
{
    /// <summary>The names the router already has flags for, in the order of <see cref="Configuration.Capabilities"/>'s bits.</summary>
    public static readonly ImmutableArray<string> Routing = ["chat", "completions", "embeddings", "tools", "vision", "json_schema", "prefill"];

    /// <summary>
    /// Names the catalog adds: <c>reasoning</c> (the model thinks before answering and takes a reasoning
    /// effort or budget) and <c>prompt_caching</c> (the host bills cached input below the input price).
    /// </summary>
    public static readonly ImmutableArray<string> Added = ["reasoning", "prompt_caching"];

    public static bool IsKnown(string name) => Routing.IndexOf(name) >= 0 || Added.IndexOf(name) >= 0;

    public static Capabilities ToFlags(IEnumerable<string> names)
    {
        var flags = Capabilities.None;
        foreach (var name in names)
        {
            var index = Routing.IndexOf(name);
            if (index >= 0)
            {
                flags |= (Capabilities)(1 << index);
            }
        }

        return flags;
    }
}
