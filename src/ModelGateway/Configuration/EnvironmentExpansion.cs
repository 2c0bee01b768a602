using System.Text;

namespace ModelGateway.Configuration;

/// <summary>
/// <c>${NAME}</c> and <c>${NAME:-default}</c> in the routing file's values, taken from the environment
/// when the file is loaded, so one file serves staging and production.
/// </summary>
/// <remarks>
/// Why this syntax: it is the one admins already write in shells, Docker Compose and Kubernetes
/// manifests; it can stand inside a value (<c>https://${REGION}.example.com/v1</c>); and <c>${</c>
/// almost never occurs in a real URL, model name, region or header value. A prefix such as
/// <c>env:</c> on every string would collide with real values (a tag <c>env:prod</c>) and could not
/// build part of a value. Where a literal <c>${</c> is needed, <c>$${</c> writes it. A value from the
/// environment is not expanded again.
/// </remarks>
internal static class EnvironmentExpansion
{
    /// <summary>Whether <paramref name="value"/> holds anything to expand (or a <c>$${</c> to unescape).</summary>
    public static bool Applies(string value) => value.Contains("${", StringComparison.Ordinal);

    /// <summary>
    /// Expands every reference in <paramref name="value"/>. Returns null, with an error at
    /// <paramref name="path"/> for each problem, when a variable is unset (or empty) without a default
    /// or a reference is malformed. Errors name variables, never their values.
    /// </summary>
    public static string? Expand(string value, string path, Func<string, string?> environment, List<ConfigError> errors)
    {
        var result = new StringBuilder(value.Length + 32);
        var ok = true;
        var position = 0;
        while (position < value.Length)
        {
            var dollar = value.IndexOf('$', position);
            if (dollar < 0)
            {
                result.Append(value, position, value.Length - position);
                break;
            }

            result.Append(value, position, dollar - position);
            var rest = value.AsSpan(dollar);
            if (rest.StartsWith("$${"))
            {
                result.Append("${");
                position = dollar + 3;
                continue;
            }

            if (!rest.StartsWith("${"))
            {
                result.Append('$');
                position = dollar + 1;
                continue;
            }

            var close = value.IndexOf('}', dollar + 2);
            if (close < 0)
            {
                errors.Add(new(path, "'${' without a closing '}' (write $${ for a literal ${)"));
                return null;
            }

            var reference = value.AsSpan(dollar + 2, close - dollar - 2);
            var separator = reference.IndexOf(":-", StringComparison.Ordinal);
            var name = separator < 0 ? reference : reference[..separator];
            var fallback = separator < 0 ? null : reference[(separator + 2)..].ToString();
            position = close + 1;
            if (!IsName(name))
            {
                errors.Add(new(path, $"'${{{reference}}}' is not a variable reference: write ${{NAME}} or ${{NAME:-default}}, NAME made of letters, digits and _"));
                ok = false;
                continue;
            }

            if (fallback is not null && fallback.Contains("${", StringComparison.Ordinal))
            {
                errors.Add(new(path, $"the default of '{name}' holds another ${{...}}: references do not nest"));
                ok = false;
                continue;
            }

            var found = environment(name.ToString());
            if (string.IsNullOrEmpty(found))
            {
                if (fallback is null)
                {
                    errors.Add(new(path, $"environment variable '{name}' is not set (give a default with ${{{name}:-default}})"));
                    ok = false;
                    continue;
                }

                found = fallback;
            }

            result.Append(found);
        }

        return ok ? result.ToString() : null;
    }

    private static bool IsName(ReadOnlySpan<char> name)
    {
        if (name.IsEmpty || char.IsAsciiDigit(name[0]))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '_')
            {
                return false;
            }
        }

        return true;
    }
}
