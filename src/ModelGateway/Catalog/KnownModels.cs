using System.Collections.Frozen;
using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using ModelGateway.Configuration;

namespace ModelGateway.Catalog;

/// <summary>
/// The model catalog shipped in the binary (<c>Catalog/known-models.json</c>): limits, list prices and
/// abilities of known models, each figure with where it came from. Loaded and validated once; answers
/// lookups by id or alias, Bedrock inference profiles and dated snapshots included. Lookups happen when a
/// routing file is compiled, never per request.
/// </summary>
internal sealed class KnownModels
{
    /// <summary>The manifest name of the embedded data file.</summary>
    public const string ResourceName = "ModelGateway.known-models.json";

    /// <summary>Bedrock's cross-region inference profile prefixes (<c>us.anthropic.claude-…</c>).</summary>
    public static readonly ImmutableArray<string> InferenceProfilePrefixes = ["us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global."];

    private static readonly string[] Tokenizers = ["o200k", "cl100k", "other", "bytes"];
    private static readonly string[] Bases = ["vendor", "secondary", "derived", "unverified"];
    private const string SelfHosted = "self-hosted";

    private static readonly Lazy<KnownModels> ShippedCatalog = new(LoadShipped, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Ids and aliases, case-insensitive.</summary>
    private readonly FrozenDictionary<string, KnownModel> _byKey;

    /// <summary>Ids and aliases that end in a Bedrock version (<c>-v1:0</c>), under their name without it.</summary>
    private readonly FrozenDictionary<string, KnownModel> _byUnversionedKey;

    private KnownModels(DateOnly @checked, ImmutableArray<KnownModelFamily> families, ImmutableArray<KnownModel> models,
        FrozenDictionary<string, KnownModel> byKey, FrozenDictionary<string, KnownModel> byUnversionedKey)
    {
        Checked = @checked;
        Families = families;
        Models = models;
        _byKey = byKey;
        _byUnversionedKey = byUnversionedKey;
    }

    /// <summary>The catalog embedded in the binary. Throws <see cref="InvalidOperationException"/> listing every problem if the file is invalid (a test keeps that from shipping).</summary>
    public static KnownModels Shipped => ShippedCatalog.Value;

    /// <summary>The date at the top of the file: when its figures were last checked.</summary>
    public DateOnly Checked { get; }

    public ImmutableArray<KnownModelFamily> Families { get; }

    /// <summary>Every row, in file order.</summary>
    public ImmutableArray<KnownModel> Models { get; }

    public bool TryFind(string? modelId, [MaybeNullWhen(false)] out KnownModel model) => TryFind(modelId, out model, out _);

    /// <summary>
    /// Finds the row for a model id as a deployment names it, case-insensitively: the row's id or an alias;
    /// failing that, the same with a Bedrock inference-profile prefix or ARN removed; then with a Bedrock
    /// version (<c>-v1:0</c>) removed; then with a date suffix removed, where the row's family uses that form.
    /// </summary>
    public bool TryFind(string? modelId, [MaybeNullWhen(false)] out KnownModel model, out KnownModelMatch match)
    {
        model = null;
        match = default;
        if (string.IsNullOrWhiteSpace(modelId))
        {
            return false;
        }

        var id = modelId.Trim();
        var viaProfile = false;
        if (id.StartsWith("arn:", StringComparison.OrdinalIgnoreCase))
        {
            // arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-… (or foundation-model/…)
            var slash = id.LastIndexOf('/');
            if (slash < 0 || slash == id.Length - 1)
            {
                return false;
            }

            id = id[(slash + 1)..];
            viaProfile = true;
        }

        if (TryExact(id, out model, out match))
        {
            match = viaProfile ? KnownModelMatch.InferenceProfile : match;
            return true;
        }

        if (TryStripInferenceProfile(id, out var unprefixed))
        {
            id = unprefixed;
            if (TryExact(id, out model, out _))
            {
                match = KnownModelMatch.InferenceProfile;
                return true;
            }
        }

        match = KnownModelMatch.Snapshot;
        if (SnapshotSuffix.TryStripBedrockVersion(id, out var unversioned))
        {
            if (_byKey.TryGetValue(unversioned, out model) || _byUnversionedKey.TryGetValue(unversioned, out model))
            {
                return true;
            }
        }
        else if (_byUnversionedKey.TryGetValue(id, out model))
        {
            return true;
        }

        foreach (var suffix in SnapshotSuffix.All)
        {
            if (SnapshotSuffix.TryStrip(id, suffix, out var undated)
                && _byKey.TryGetValue(undated, out model)
                && model.Family.SnapshotSuffixes.IndexOf(suffix) >= 0)
            {
                return true;
            }
        }

        model = null;
        return false;
    }

    /// <summary>Reads and validates a catalog; returns null and fills <paramref name="errors"/> with every problem, each with its path.</summary>
    public static KnownModels? Load(ReadOnlySpan<byte> utf8Json, List<string> errors)
    {
        KnownModelsDocument? document;
        try
        {
            document = JsonSerializer.Deserialize(utf8Json, KnownModelsJsonContext.Default.KnownModelsDocument);
        }
        catch (JsonException ex)
        {
            errors.Add($"{ex.Path ?? "$"}: {ex.Message}");
            return null;
        }

        if (document is null)
        {
            errors.Add("$: the file is empty");
            return null;
        }

        var before = errors.Count;
        var catalog = Build(document, errors);
        return errors.Count == before ? catalog : null;
    }

    internal static string TokenizerName(TokenizerKind tokenizer) => Tokenizers[(int)tokenizer];

    private bool TryExact(string key, [MaybeNullWhen(false)] out KnownModel model, out KnownModelMatch match)
    {
        if (_byKey.TryGetValue(key, out model))
        {
            match = string.Equals(model.Id, key, StringComparison.OrdinalIgnoreCase) ? KnownModelMatch.Id : KnownModelMatch.Alias;
            return true;
        }

        match = default;
        return false;
    }

    private static bool TryStripInferenceProfile(string id, out string rest)
    {
        foreach (var prefix in InferenceProfilePrefixes)
        {
            // A profile id is the prefix and a Bedrock model id, which itself is vendor.model.
            if (id.Length > prefix.Length && id.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && id.IndexOf('.', prefix.Length) > prefix.Length)
            {
                rest = id[prefix.Length..];
                return true;
            }
        }

        rest = id;
        return false;
    }

    private static KnownModels LoadShipped()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"The embedded resource {ResourceName} is missing from the build.");
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var errors = new List<string>();
        return Load(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), errors)
            ?? throw new InvalidOperationException($"{ResourceName} has {errors.Count} error(s):{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", errors)}");
    }

    private static KnownModels Build(KnownModelsDocument document, List<string> errors)
    {
        var fileChecked = ParseDate(document.Checked, "checked", errors) ?? DateOnly.MinValue;
        if (document.Currency is not "USD")
        {
            errors.Add("currency: must be USD");
        }

        if (document.Unit is not "per 1M tokens")
        {
            errors.Add("unit: must be 'per 1M tokens'");
        }

        if (document.Families is not { Count: > 0 })
        {
            errors.Add("families: list at least one family");
            return Empty(fileChecked);
        }

        var families = ImmutableArray.CreateBuilder<KnownModelFamily>();
        var models = ImmutableArray.CreateBuilder<KnownModel>();
        var byKey = new Dictionary<string, (KnownModel Model, string Where)>(StringComparer.OrdinalIgnoreCase);
        var byUnversioned = new Dictionary<string, (KnownModel Model, string Where)>(StringComparer.OrdinalIgnoreCase);

        for (var f = 0; f < document.Families.Count; f++)
        {
            var path = $"families[{f}]";
            var doc = document.Families[f];
            if (doc is null)
            {
                errors.Add($"{path}: empty entry");
                continue;
            }

            var family = BuildFamily(doc, path, fileChecked, errors, out var familyBasis, out var familyFigures);
            families.Add(family);
            if (doc.Models is not { Count: > 0 })
            {
                errors.Add($"{path}.models: list at least one model");
                continue;
            }

            for (var m = 0; m < doc.Models.Count; m++)
            {
                var rowPath = $"{path}.models[{m}]";
                if (doc.Models[m] is not { } row)
                {
                    errors.Add($"{rowPath}: empty entry");
                    continue;
                }

                if (BuildModel(row, doc, family, familyBasis, familyFigures, rowPath, errors) is not { } model)
                {
                    continue;
                }

                models.Add(model);
                Index(model, model.Id, $"{rowPath}.id", byKey, byUnversioned, errors);
                for (var a = 0; a < model.Aliases.Length; a++)
                {
                    Index(model, model.Aliases[a], $"{rowPath}.aliases[{a}]", byKey, byUnversioned, errors);
                }
            }
        }

        foreach (var (key, (model, where)) in byUnversioned)
        {
            if (byKey.TryGetValue(key, out var other) && !ReferenceEquals(other.Model, model))
            {
                errors.Add($"{where}: without its Bedrock version it reads '{key}', which is {other.Model.Id}'s ({other.Where})");
            }
        }

        return new KnownModels(
            fileChecked,
            families.ToImmutable(),
            models.ToImmutable(),
            byKey.ToFrozenDictionary(p => p.Key, p => p.Value.Model, StringComparer.OrdinalIgnoreCase),
            byUnversioned.ToFrozenDictionary(p => p.Key, p => p.Value.Model, StringComparer.OrdinalIgnoreCase));
    }

    private static KnownModels Empty(DateOnly @checked) => new(@checked, [], [],
        FrozenDictionary<string, KnownModel>.Empty, FrozenDictionary<string, KnownModel>.Empty);

    private static KnownModelFamily BuildFamily(KnownFamilyDocument doc, string path, DateOnly fileChecked, List<string> errors,
        out FigureBasis basis, out Dictionary<KnownFigure, FigureBasis> figures)
    {
        var name = Required(doc.Family, $"{path}.family", errors);
        var vendor = Required(doc.Vendor, $"{path}.vendor", errors);
        var host = Required(doc.Host, $"{path}.host", errors);
        var source = Url(doc.Source, $"{path}.source", required: true, errors);
        var seenAt = ImmutableArray.CreateBuilder<string>();
        for (var i = 0; i < (doc.SeenAt?.Count ?? 0); i++)
        {
            if (Url(doc.SeenAt![i], $"{path}.seenAt[{i}]", required: true, errors) is { } url)
            {
                seenAt.Add(url);
            }
        }

        var day = ParseDate(doc.Checked, $"{path}.checked", errors) ?? fileChecked;
        if (day > fileChecked)
        {
            errors.Add($"{path}.checked: {doc.Checked} is later than the file's date ({Day(fileChecked)})");
        }

        basis = ParseBasis(doc.Basis, $"{path}.basis", errors, required: true) ?? FigureBasis.Unverified;
        if (basis == FigureBasis.Derived)
        {
            errors.Add($"{path}.basis: a family's figures cannot all be derived; mark single figures as derived in figures");
        }

        figures = ParseFigures(doc.Figures, $"{path}.figures", errors);
        if ((basis == FigureBasis.Secondary || figures.ContainsValue(FigureBasis.Secondary)) && seenAt.Count == 0)
        {
            errors.Add($"{path}.seenAt: name the pages the secondary figures were read from");
        }

        var suffixes = ImmutableArray.CreateBuilder<string>();
        for (var i = 0; i < (doc.SnapshotSuffixes?.Count ?? 0); i++)
        {
            var suffix = doc.SnapshotSuffixes![i];
            if (SnapshotSuffix.All.IndexOf(suffix) < 0)
            {
                errors.Add($"{path}.snapshotSuffixes[{i}]: unknown form '{suffix}' (known: {string.Join(", ", SnapshotSuffix.All)})");
            }
            else
            {
                suffixes.Add(suffix);
            }
        }

        return new KnownModelFamily
        {
            Name = name ?? "",
            Vendor = vendor ?? "",
            Host = host ?? "",
            Source = source ?? "",
            SeenAt = seenAt.ToImmutable(),
            Checked = day,
            SnapshotSuffixes = suffixes.ToImmutable(),
            Notes = doc.Notes is null ? [] : [.. doc.Notes],
        };

        static string Day(DateOnly date) => date.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
    }

    private static KnownModel? BuildModel(KnownModelDocument row, KnownFamilyDocument familyDoc, KnownModelFamily family,
        FigureBasis familyBasis, Dictionary<KnownFigure, FigureBasis> familyFigures, string rowPath, List<string> errors)
    {
        var id = row.Id;
        if (string.IsNullOrWhiteSpace(id))
        {
            errors.Add($"{rowPath}.id: required");
            return null;
        }

        var path = $"{rowPath} ({id})";
        var count = errors.Count;
        var aliases = row.Aliases ?? [];
        for (var a = 0; a < aliases.Count; a++)
        {
            if (string.IsNullOrWhiteSpace(aliases[a]))
            {
                errors.Add($"{path}.aliases[{a}]: empty alias");
            }
        }

        if (row.ContextWindow is not > 0)
        {
            errors.Add($"{path}.contextWindow: required, greater than 0");
        }

        if (row.MaxOutputTokens is { } maxOutput && (maxOutput <= 0 || maxOutput > (row.ContextWindow ?? int.MaxValue)))
        {
            errors.Add($"{path}.maxOutputTokens: {maxOutput} must be greater than 0 and at most the context window ({row.ContextWindow})");
        }

        var capabilityNames = row.Capabilities ?? familyDoc.Capabilities ?? [];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var c = 0; c < capabilityNames.Count; c++)
        {
            if (!KnownCapabilities.IsKnown(capabilityNames[c]))
            {
                errors.Add($"{path}.capabilities[{c}]: unknown capability '{capabilityNames[c]}' (known: {string.Join(", ", KnownCapabilities.Routing.AddRange(KnownCapabilities.Added))})");
            }
            else if (!seen.Add(capabilityNames[c]))
            {
                errors.Add($"{path}.capabilities[{c}]: '{capabilityNames[c]}' is listed twice");
            }
        }

        if (!seen.Contains("chat") && !seen.Contains("completions") && !seen.Contains("embeddings"))
        {
            errors.Add($"{path}.capabilities: say what the model serves (chat, completions or embeddings)");
        }

        var embeddingsOnly = seen.Contains("embeddings") && !seen.Contains("chat") && !seen.Contains("completions");
        var pricing = BuildPricing(row.Pricing, family.Host == SelfHosted, embeddingsOnly, path, errors);
        if (embeddingsOnly && row.MaxOutputTokens is not null)
        {
            errors.Add($"{path}.maxOutputTokens: an embeddings model has no output");
        }

        var tokenizerName = row.Tokenizer ?? familyDoc.Tokenizer;
        var tokenizer = Array.IndexOf(Tokenizers, tokenizerName);
        if (tokenizer < 0)
        {
            errors.Add($"{path}.tokenizer: {(tokenizerName is null ? "required (on the row or its family)" : $"unknown tokenizer '{tokenizerName}'")} (known: {string.Join(", ", Tokenizers)})");
        }

        var bases = new FigureBasis[KnownFigures.Count];
        var rowFigures = ParseFigures(row.Figures, $"{path}.figures", errors);
        for (var i = 0; i < bases.Length; i++)
        {
            var figure = (KnownFigure)i;
            bases[i] = rowFigures.TryGetValue(figure, out var own) ? own : familyFigures.TryGetValue(figure, out var shared) ? shared : familyBasis;
            if (rowFigures.ContainsKey(figure) && !HasFigure(figure, row))
            {
                errors.Add($"{path}.figures: gives the basis of {KnownFigures.Name(figure)}, which the row does not have");
            }
        }

        // The family already reports its own secondary figures without seenAt pages.
        if (rowFigures.ContainsValue(FigureBasis.Secondary) && family.SeenAt.IsEmpty)
        {
            errors.Add($"{path}.figures: a secondary figure needs the family's seenAt pages");
        }

        if (errors.Count != count)
        {
            return null;
        }

        return new KnownModel
        {
            Id = id,
            Aliases = [.. aliases],
            Family = family,
            ContextWindow = row.ContextWindow!.Value,
            MaxOutputTokens = row.MaxOutputTokens,
            Pricing = pricing,
            CapabilityNames = [.. capabilityNames],
            Capabilities = KnownCapabilities.ToFlags(capabilityNames),
            Tokenizer = (TokenizerKind)tokenizer,
            Note = row.Note,
            Bases = [.. bases],
        };
    }

    private static KnownPricing? BuildPricing(KnownPricingDocument? doc, bool selfHosted, bool embeddingsOnly, string path, List<string> errors)
    {
        if (doc is null)
        {
            if (!selfHosted)
            {
                errors.Add($"{path}.pricing: required (only self-hosted rows have no list price)");
            }

            return null;
        }

        if (selfHosted)
        {
            errors.Add($"{path}.pricing: a self-hosted row has no list price (the hardware is the cost)");
        }

        Positive(doc.Input, $"{path}.pricing.input", required: true, errors);
        Positive(doc.Output, $"{path}.pricing.output", required: !embeddingsOnly, errors);
        Positive(doc.CacheRead, $"{path}.pricing.cacheRead", required: false, errors);
        Positive(doc.CacheWrite, $"{path}.pricing.cacheWrite", required: false, errors);
        Positive(doc.Reasoning, $"{path}.pricing.reasoning", required: false, errors);
        if (embeddingsOnly && (doc.Output ?? doc.CacheRead ?? doc.CacheWrite ?? doc.Reasoning) is not null)
        {
            errors.Add($"{path}.pricing: an embeddings model has only an input price");
        }

        if (doc.CacheRead is { } read && doc.Input is { } input && read >= input)
        {
            errors.Add($"{path}.pricing.cacheRead: {read} is not below the input price ({input})");
        }

        if (doc.Reasoning is { } reasoning && reasoning == doc.Output)
        {
            errors.Add($"{path}.pricing.reasoning: equals the output price; leave it out (reasoning is billed as output unless it differs)");
        }

        return new KnownPricing(doc.Input ?? 0, doc.Output, doc.CacheRead, doc.CacheWrite, doc.Reasoning);
    }

    private static bool HasFigure(KnownFigure figure, KnownModelDocument row) => figure switch
    {
        KnownFigure.MaxOutputTokens => row.MaxOutputTokens is not null,
        KnownFigure.InputPrice => row.Pricing?.Input is not null,
        KnownFigure.OutputPrice => row.Pricing?.Output is not null,
        KnownFigure.CacheReadPrice => row.Pricing?.CacheRead is not null,
        KnownFigure.CacheWritePrice => row.Pricing?.CacheWrite is not null,
        KnownFigure.ReasoningPrice => row.Pricing?.Reasoning is not null,
        _ => true,
    };

    private static void Index(KnownModel model, string key, string where,
        Dictionary<string, (KnownModel Model, string Where)> byKey, Dictionary<string, (KnownModel Model, string Where)> byUnversioned, List<string> errors)
    {
        if (key.Length != key.Trim().Length || key.Contains(' ', StringComparison.Ordinal))
        {
            errors.Add($"{where}: '{key}' has white space");
            return;
        }

        if (TryStripInferenceProfile(key, out _))
        {
            errors.Add($"{where}: '{key}' starts with a Bedrock inference-profile prefix; list the id without it (the prefixes are matched by rule)");
            return;
        }

        if (!byKey.TryAdd(key, (model, where)))
        {
            var first = byKey[key];
            errors.Add(ReferenceEquals(first.Model, model)
                ? $"{where}: '{key}' is listed twice for {model.Id}"
                : $"{where}: '{key}' is already {first.Model.Id}'s ({first.Where})");
            return;
        }

        if (SnapshotSuffix.TryStripBedrockVersion(key, out var unversioned)
            && !byUnversioned.TryAdd(unversioned, (model, where))
            && !ReferenceEquals(byUnversioned[unversioned].Model, model))
        {
            errors.Add($"{where}: without its Bedrock version '{key}' reads '{unversioned}', like {byUnversioned[unversioned].Model.Id}'s {byUnversioned[unversioned].Where}");
        }
    }

    private static Dictionary<KnownFigure, FigureBasis> ParseFigures(Dictionary<string, string>? figures, string path, List<string> errors)
    {
        var result = new Dictionary<KnownFigure, FigureBasis>();
        foreach (var (name, value) in figures ?? [])
        {
            if (!KnownFigures.TryParse(name, out var figure))
            {
                errors.Add($"{path}: unknown figure '{name}' (known: {string.Join(", ", Enumerable.Range(0, KnownFigures.Count).Select(i => KnownFigures.Name((KnownFigure)i)))})");
            }
            else if (ParseBasis(value, $"{path}.{name}", errors, required: true) is { } basis)
            {
                result[figure] = basis;
            }
        }

        return result;
    }

    private static FigureBasis? ParseBasis(string? value, string path, List<string> errors, bool required)
    {
        if (value is null)
        {
            if (required)
            {
                errors.Add($"{path}: required (one of {string.Join(", ", Bases)})");
            }

            return null;
        }

        var index = Array.IndexOf(Bases, value);
        if (index < 0)
        {
            errors.Add($"{path}: unknown basis '{value}' (one of {string.Join(", ", Bases)})");
            return null;
        }

        return (FigureBasis)index;
    }

    private static DateOnly? ParseDate(string? text, string path, List<string> errors)
    {
        if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
        {
            return date;
        }

        errors.Add($"{path}: {(text is null ? "required" : $"'{text}' is not a date")} (YYYY-MM-DD)");
        return null;
    }

    private static string? Required(string? text, string path, List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            errors.Add($"{path}: required");
            return null;
        }

        return text;
    }

    private static string? Url(string? text, string path, bool required, List<string> errors)
    {
        if (text is null)
        {
            if (required)
            {
                errors.Add($"{path}: required (an https URL)");
            }

            return null;
        }

        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps)
        {
            errors.Add($"{path}: '{text}' is not an absolute https URL");
            return null;
        }

        return text;
    }

    private static void Positive(decimal? value, string path, bool required, List<string> errors)
    {
        if (value is null)
        {
            if (required)
            {
                errors.Add($"{path}: required");
            }
        }
        else if (value <= 0)
        {
            errors.Add($"{path}: {value} must be greater than 0");
        }
    }
}

/// <summary>
/// The date forms snapshot ids take, by family: <c>-YYYY-MM-DD</c> (OpenAI: <c>gpt-4o-2024-08-06</c>),
/// <c>-YYYYMMDD</c> (Anthropic: <c>claude-sonnet-4-5-20250929</c>), <c>@YYYYMMDD</c> (Claude on Vertex AI),
/// <c>-YYMM</c> (Mistral: <c>mistral-large-2411</c>) and <c>-NNN</c> (Gemini: <c>gemini-2.0-flash-001</c>).
/// A family lists the forms it uses; an id with that suffix and no row of its own matches the undated row.
/// </summary>
internal static class SnapshotSuffix
{
    public const string IsoDate = "-YYYY-MM-DD";
    public const string CompactDate = "-YYYYMMDD";
    public const string VertexDate = "@YYYYMMDD";
    public const string YearMonth = "-YYMM";
    public const string Revision = "-NNN";

    /// <summary>Longest first, so a longer date is never read as a shorter one.</summary>
    public static readonly ImmutableArray<string> All = [IsoDate, CompactDate, VertexDate, YearMonth, Revision];

    public static bool TryStrip(string id, string suffix, out string undated)
    {
        // Each form is its separator followed by digits (and, for the ISO form, two more dashes).
        var length = suffix.Length;
        undated = id;
        if (id.Length <= length || id[^length] != suffix[0])
        {
            return false;
        }

        for (var i = 1; i < length; i++)
        {
            var c = id[id.Length - length + i];
            if (suffix[i] == '-' ? c != '-' : !char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        undated = id[..^length];
        return true;
    }

    /// <summary>Removes a Bedrock model version (<c>-v1</c>, <c>-v1:0</c>, <c>-v2:0</c>) from the end of an id.</summary>
    public static bool TryStripBedrockVersion(string id, out string unversioned)
    {
        unversioned = id;
        var end = id.Length;
        var colon = id.LastIndexOf(':');
        if (colon > 0 && colon < end - 1 && AllDigits(id.AsSpan(colon + 1)))
        {
            end = colon;
        }

        var v = id.LastIndexOf("-v", end - 1, StringComparison.OrdinalIgnoreCase);
        if (v <= 0 || v + 2 >= end || !AllDigits(id.AsSpan(v + 2, end - v - 2)))
        {
            return false;
        }

        unversioned = id[..v];
        return true;
    }

    private static bool AllDigits(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return !text.IsEmpty;
    }
}
