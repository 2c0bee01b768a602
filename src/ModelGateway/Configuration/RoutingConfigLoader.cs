using System.Globalization;
using System.Text;
using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ModelGateway.Configuration;

/// <summary>Turns the text of a routing file (YAML or JSON) into a <see cref="RoutingConfigDocument"/>.</summary>
internal static class RoutingConfigLoader
{
    /// <summary>Parses the file. Syntax and type errors come back as errors with their path, never as exceptions.</summary>
    public static RoutingConfigDocument? Parse(string text, out List<ConfigError> errors) => Parse(text, Environment.GetEnvironmentVariable, out errors);

    /// <summary>
    /// Parses the file, expanding <c>${NAME}</c> and <c>${NAME:-default}</c> in its values from
    /// <paramref name="environment"/> (see <see cref="EnvironmentExpansion"/>).
    /// </summary>
    public static RoutingConfigDocument? Parse(string text, Func<string, string?> environment, out List<ConfigError> errors)
    {
        errors = [];
        byte[] json;
        // Files without a reference (most) take the plain path: no paths built, nothing copied.
        var expansion = EnvironmentExpansion.Applies(text) ? new Expansion(environment, errors) : null;
        var trimmed = text.AsSpan().TrimStart();
        if (trimmed.Length > 0 && trimmed[0] == '{')
        {
            json = Encoding.UTF8.GetBytes(text);
            if (expansion is not null)
            {
                json = ExpandJson(json, expansion);
            }
        }
        else
        {
            try
            {
                json = YamlToJson(text, expansion);
            }
            catch (YamlException ex)
            {
                errors.Add(new ConfigError($"line {ex.Start.Line}, column {ex.Start.Column}", $"invalid YAML: {ex.Message}"));
                return null;
            }
            catch (InvalidDataException ex)
            {
                errors.Add(new ConfigError("$", ex.Message));
                return null;
            }
        }

        if (errors.Count > 0)
        {
            // Every unset variable and malformed reference, each with its path, in one report.
            return null;
        }

        try
        {
            var document = JsonSerializer.Deserialize(json, RoutingConfigJsonContext.Default.RoutingConfigDocument);
            if (document is null)
            {
                errors.Add(new ConfigError("$", "the file is empty"));
            }
            else if (expansion is not null)
            {
                document.FromEnvironment = expansion.Paths;
            }

            return document;
        }
        catch (JsonException ex)
        {
            errors.Add(new ConfigError(NormalizePath(ex.Path), Describe(ex)));
            return null;
        }
    }

    private static string Describe(JsonException ex)
    {
        // System.Text.Json messages name CLR types; admins need the YAML/JSON view of the problem.
        var message = ex.Message;
        if (message.Contains("could not be mapped to any .NET member", StringComparison.Ordinal))
        {
            return "unknown field (check its spelling against docs/configuration.md)";
        }

        if (message.Contains("could not be converted to", StringComparison.Ordinal))
        {
            var expected = message switch
            {
                _ when message.Contains("System.Int32", StringComparison.Ordinal) => "a whole number",
                _ when message.Contains("System.Decimal", StringComparison.Ordinal) || message.Contains("System.Double", StringComparison.Ordinal) => "a number",
                _ when message.Contains("System.Boolean", StringComparison.Ordinal) => "true or false",
                _ when message.Contains("System.String", StringComparison.Ordinal) => "a text value",
                _ when message.Contains("List", StringComparison.Ordinal) => "a list",
                _ when message.Contains("Dictionary", StringComparison.Ordinal) => "a map of names to values",
                _ => "a section with fields",
            };
            return $"wrong type: expected {expected}";
        }

        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }

    private static string NormalizePath(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$")
        {
            return "$";
        }

        return path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
    }

    private static byte[] YamlToJson(string text, Expansion? expansion)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            if (stream.Documents.Count == 0)
            {
                writer.WriteNullValue();
            }
            else if (stream.Documents.Count > 1)
            {
                throw new InvalidDataException("the file holds more than one YAML document; keep one");
            }
            else
            {
                WriteNode(writer, stream.Documents[0].RootNode, expansion, string.Empty);
            }
        }

        return buffer.ToArray();
    }

    // path is the field's path as errors name it (providers[0].baseUrl); built only while expanding.
    private static void WriteNode(Utf8JsonWriter writer, YamlNode node, Expansion? expansion, string path)
    {
        switch (node)
        {
            case YamlMappingNode mapping:
                writer.WriteStartObject();
                foreach (var (key, value) in mapping.Children)
                {
                    if (key is not YamlScalarNode { Value: { } name })
                    {
                        throw new YamlException(key.Start, key.End, "a key must be a plain name");
                    }

                    writer.WritePropertyName(name);
                    WriteNode(writer, value, expansion, expansion is null ? path : path.Length == 0 ? name : $"{path}.{name}");
                }

                writer.WriteEndObject();
                break;
            case YamlSequenceNode sequence:
                writer.WriteStartArray();
                for (var i = 0; i < sequence.Children.Count; i++)
                {
                    WriteNode(writer, sequence.Children[i], expansion, expansion is null ? path : $"{path}[{i}]");
                }

                writer.WriteEndArray();
                break;
            case YamlScalarNode scalar:
                WriteScalar(writer, scalar, expansion, path);
                break;
            default:
                throw new YamlException(node.Start, node.End, "aliases and tags are not supported in the routing file");
        }
    }

    // YAML 1.2 core schema: unquoted scalars may be null, booleans or numbers; quoted ones are strings.
    // A value from the environment is typed as if it had been written in its place: quote the
    // reference ("${ORG_ID}") to keep digits as text.
    private static void WriteScalar(Utf8JsonWriter writer, YamlScalarNode scalar, Expansion? expansion, string path)
    {
        var value = scalar.Value ?? string.Empty;
        if (expansion is not null && EnvironmentExpansion.Applies(value))
        {
            value = expansion.Expand(value, path);
        }

        if (scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded)
        {
            writer.WriteStringValue(value);
            return;
        }

        switch (value)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                writer.WriteNullValue();
                return;
            case "true" or "True" or "TRUE":
                writer.WriteBooleanValue(true);
                return;
            case "false" or "False" or "FALSE":
                writer.WriteBooleanValue(false);
                return;
        }

        if (long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
        {
            writer.WriteNumberValue(integer);
        }
        else if (LooksNumeric(value) && decimal.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
        {
            writer.WriteNumberValue(number);
        }
        else
        {
            writer.WriteStringValue(value);
        }
    }

    // A JSON routing file: string values are expanded and stay strings. A file that does not parse is
    // returned as it is, so the deserializer reports the syntax error with its position as usual.
    private static byte[] ExpandJson(byte[] json, Expansion expansion)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException)
        {
            return json;
        }

        using (document)
        {
            using var buffer = new MemoryStream(json.Length + 256);
            using (var writer = new Utf8JsonWriter(buffer))
            {
                WriteExpanded(writer, document.RootElement, expansion, string.Empty);
            }

            return buffer.ToArray();
        }
    }

    private static void WriteExpanded(Utf8JsonWriter writer, JsonElement element, Expansion expansion, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in element.EnumerateObject())
                {
                    writer.WritePropertyName(property.Name);
                    WriteExpanded(writer, property.Value, expansion, path.Length == 0 ? property.Name : $"{path}.{property.Name}");
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    WriteExpanded(writer, item, expansion, $"{path}[{index++}]");
                }

                writer.WriteEndArray();
                break;
            case JsonValueKind.String when element.GetString() is { } text && EnvironmentExpansion.Applies(text):
                writer.WriteStringValue(expansion.Expand(text, path));
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }

    /// <summary>One load's expansion: where the variables come from, the errors, and which paths took a value.</summary>
    private sealed class Expansion(Func<string, string?> environment, List<ConfigError> errors)
    {
        public HashSet<string> Paths { get; } = new(StringComparer.Ordinal);

        // On an error the raw text stays in place; the load fails anyway with every error listed.
        public string Expand(string value, string path)
        {
            var expanded = EnvironmentExpansion.Expand(value, path, environment, errors);
            if (expanded is null)
            {
                return value;
            }

            Paths.Add(path);
            return expanded;
        }
    }

    private static bool LooksNumeric(string value)
    {
        foreach (var c in value)
        {
            if (!(char.IsAsciiDigit(c) || c is '.' or '-' or '+' or 'e' or 'E'))
            {
                return false;
            }
        }

        return value.Length > 0;
    }
}

/// <summary>One problem in the routing file, with the path of the field it concerns.</summary>
public readonly record struct ConfigError(string Path, string Message)
{
    public override string ToString() => $"{Path}: {Message}";
}
