using System.Collections.Frozen;

namespace ModelGateway.Providers;

/// <summary>The provider kinds this gateway speaks, by routing-file name.</summary>
internal sealed class ProviderAdapterRegistry(IEnumerable<IProviderAdapterFactory> factories)
{
    private readonly FrozenDictionary<string, IProviderAdapterFactory> _byKind = factories.ToFrozenDictionary(f => f.Kind, StringComparer.Ordinal);

    /// <summary>Kind names in a stable order, for error messages and docs.</summary>
    public IReadOnlyList<string> Kinds { get; } = [.. factories.Select(f => f.Kind).Order(StringComparer.Ordinal)];

    public bool TryGet(string kind, out IProviderAdapterFactory factory) => _byKind.TryGetValue(kind, out factory!);
}
