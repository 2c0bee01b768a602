using System.Text;

namespace ModelGateway.Configuration;

/// <summary>
/// What one compilation of the routing file collects: every error and warning with its path, and the
/// files secrets were read from (a rewrite of one reloads the catalog). Shared by the catalog builder
/// and each provider kind's own validation.
/// </summary>
internal sealed class ConfigContext(List<ConfigError> errors, List<ConfigError> warnings)
{
    public List<ConfigError> Errors { get; } = errors;

    public List<ConfigError> Warnings { get; } = warnings;

    public List<string> SecretFiles { get; } = [];

    /// <summary>Paths whose value came from <c>${NAME}</c> expansion: a secret there is not a literal in the file.</summary>
    public IReadOnlySet<string> FromEnvironment { get; init; } = new HashSet<string>();

    public void Error(string path, string message) => Errors.Add(new(path, message));

    public void Warning(string path, string message) => Warnings.Add(new(path, message));

    /// <summary>Refuses a field that this kind does not take.</summary>
    public void NotFor(object? value, string path, string kind)
    {
        if (value is not null)
        {
            Error(path, $"not used by {kind} providers");
        }
    }

    /// <summary>Resolves <c>env:NAME</c>, <c>file:/path</c> or a literal value. Errors never include the secret.</summary>
    public Secret? ResolveSecret(string? reference, string path)
    {
        if (reference is null)
        {
            return null;
        }

        if (reference.StartsWith("env:", StringComparison.Ordinal))
        {
            var variable = reference[4..];
            var value = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrEmpty(value))
            {
                Error(path, $"environment variable '{variable}' is not set");
                return null;
            }

            return new Secret(value);
        }

        if (reference.StartsWith("file:", StringComparison.Ordinal))
        {
            var file = reference[5..];
            SecretFiles.Add(Path.GetFullPath(file));
            try
            {
                var value = File.ReadAllText(file, Encoding.UTF8).Trim();
                if (value.Length == 0)
                {
                    Error(path, $"file '{file}' is empty");
                    return null;
                }

                return new Secret(value);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Error(path, $"cannot read file '{file}': {ex.GetType().Name}");
                return null;
            }
        }

        if (!FromEnvironment.Contains(path))
        {
            Warning(path, "a literal secret in the routing file; prefer env:NAME, ${NAME} or file:/path");
        }

        return new Secret(reference);
    }
}
