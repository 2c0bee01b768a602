using ModelGateway.Catalog;
using ModelGateway.Providers;

namespace ModelGateway.Configuration;

/// <summary>
/// What a deployment takes from the shipped model catalog: figures the routing file leaves out
/// (context window, output limit, each price, capabilities, tokenizer), and a note of where each
/// figure came from, for <c>/v1/models</c> and <c>explain</c>. Anything the file states wins.
/// </summary>
internal sealed class KnownModelInheritance
{
    /// <summary>The value of <c>knownModel</c> that turns inheritance off for a deployment.</summary>
    public const string None = "none";

    public const string FromFile = "routing file";

    private readonly Dictionary<string, string> _sources = new(StringComparer.Ordinal);

    private KnownModelInheritance(KnownModel? known)
    {
        Known = known;
    }

    public KnownModel? Known { get; }

    /// <summary>Figure name (<c>contextWindow</c>, <c>pricing.input</c>...) → where its value came from.</summary>
    public IReadOnlyDictionary<string, string> Sources => _sources;

    /// <summary>Finds the deployment's catalog row: <c>knownModel</c> when given (an unknown id is an error), else <c>model</c>.</summary>
    public static KnownModelInheritance Resolve(string? knownModel, string? model, string path, List<ConfigError> errors)
    {
        if (knownModel is not null)
        {
            if (knownModel.Equals(None, StringComparison.OrdinalIgnoreCase))
            {
                return new(null);
            }

            if (!KnownModels.Shipped.TryFind(knownModel, out var named))
            {
                errors.Add(new(path + ".knownModel", $"'{knownModel}' is not in the model catalog (docs/model-catalog.md); state the figures, or use knownModel: none"));
                return new(null);
            }

            return new(named);
        }

        return new(KnownModels.Shipped.TryFind(model, out var found) ? found : null);
    }

    public int? ContextWindow(int? stated) => Pick(stated, Known?.ContextWindow, KnownFigure.ContextWindow);

    public int? MaxOutputTokens(int? stated) => Pick(stated, Known?.MaxOutputTokens, KnownFigure.MaxOutputTokens);

    /// <summary>Each price the file leaves out comes from the catalog; a self-hosted price (<c>perHour</c>) takes none.</summary>
    public PricingDocument? Pricing(PricingDocument? stated)
    {
        if (Known?.Pricing is not { } catalog || stated?.PerHour is not null)
        {
            Note(stated?.Input, KnownFigure.InputPrice, null);
            return stated;
        }

        var statedRead = stated?.CacheRead ?? stated?.CachedInput;
        return new PricingDocument
        {
            Input = Pick(stated?.Input, catalog.Input, KnownFigure.InputPrice),
            Output = Pick(stated?.Output, catalog.Output, KnownFigure.OutputPrice),
            CacheRead = Pick(statedRead, catalog.CacheRead, KnownFigure.CacheReadPrice),
            CacheWrite = Pick(stated?.CacheWrite, catalog.CacheWrite, KnownFigure.CacheWritePrice),
            Reasoning = Pick(stated?.Reasoning, catalog.Reasoning, KnownFigure.ReasoningPrice),
        };
    }

    /// <summary>The catalog's abilities, limited to what the provider kind can serve; null when the file lists its own.</summary>
    public Capabilities? Capabilities(List<string>? stated, IProviderAdapterFactory? factory)
    {
        if (stated is not null || Known is null)
        {
            _sources[KnownFigures.Name(KnownFigure.Capabilities)] = FromFile;
            return null;
        }

        _sources[KnownFigures.Name(KnownFigure.Capabilities)] = Describe(KnownFigure.Capabilities);
        var abilities = Known.Capabilities & (factory?.Supports ?? Known.Capabilities);
        return abilities == Configuration.Capabilities.None ? Configuration.Capabilities.Chat : abilities;
    }

    public TokenizerKind? Tokenizer(string? stated)
    {
        if (stated is not null || Known is null)
        {
            return null;
        }

        _sources[KnownFigures.Name(KnownFigure.Tokenizer)] = Describe(KnownFigure.Tokenizer);
        return Known.Tokenizer;
    }

    private T? Pick<T>(T? stated, T? catalog, KnownFigure figure)
        where T : struct
    {
        Note(stated, figure, catalog);
        return stated ?? catalog;
    }

    private void Note<T>(T? stated, KnownFigure figure, T? catalog)
        where T : struct
    {
        if (stated is not null)
        {
            _sources[KnownFigures.Name(figure)] = FromFile;
        }
        else if (catalog is not null && Known is not null)
        {
            _sources[KnownFigures.Name(figure)] = Describe(figure);
        }
    }

    private string Describe(KnownFigure figure) => $"model catalog ({Known!.Id}): {Known.ProvenanceOf(figure).Describe()}";
}
