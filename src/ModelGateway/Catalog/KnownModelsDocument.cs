using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelGateway.Catalog;

// known-models.json as it is written. Every member is nullable so that the validator, not the
// deserializer, decides what is missing and reports it with its path (the routing file's approach).
// docs/model-catalog.md documents each field.

/// <summary>The whole data file: its date and the model families it lists.</summary>
internal sealed class KnownModelsDocument
{
    public string? Checked { get; set; }
    public string? Currency { get; set; }
    public string? Unit { get; set; }
    public List<string>? About { get; set; }
    public List<KnownFamilyDocument>? Families { get; set; }
}

/// <summary>One vendor's model family as one host prices it, with where the figures came from.</summary>
internal sealed class KnownFamilyDocument
{
    public string? Family { get; set; }
    public string? Vendor { get; set; }
    public string? Host { get; set; }
    public string? Source { get; set; }
    public List<string>? SeenAt { get; set; }
    public string? Checked { get; set; }
    public string? Basis { get; set; }
    public Dictionary<string, string>? Figures { get; set; }
    public List<string>? SnapshotSuffixes { get; set; }
    public List<string>? Capabilities { get; set; }
    public string? Tokenizer { get; set; }
    public List<string>? Notes { get; set; }
    public List<KnownModelDocument>? Models { get; set; }
}

/// <summary>One model row.</summary>
internal sealed class KnownModelDocument
{
    public string? Id { get; set; }
    public List<string>? Aliases { get; set; }
    public int? ContextWindow { get; set; }
    public int? MaxOutputTokens { get; set; }
    public KnownPricingDocument? Pricing { get; set; }
    public List<string>? Capabilities { get; set; }
    public string? Tokenizer { get; set; }
    public Dictionary<string, string>? Figures { get; set; }
    public string? Note { get; set; }
}

/// <summary>USD per one million tokens.</summary>
internal sealed class KnownPricingDocument
{
    public decimal? Input { get; set; }
    public decimal? Output { get; set; }
    public decimal? CacheRead { get; set; }
    public decimal? CacheWrite { get; set; }
    public decimal? Reasoning { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    ReadCommentHandling = JsonCommentHandling.Disallow,
    AllowTrailingCommas = false,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(KnownModelsDocument))]
internal sealed partial class KnownModelsJsonContext : JsonSerializerContext;
