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
    public static RoutingConfigDocument? Parse(string text, out List<ConfigError> errors)
    {
        errors = [];
        byte[] json;
        var trimmed = text.AsSpan().TrimStart();
        if (trimmed.Length > 0 && trimmed[0] == '{')
        {
            json = Encoding.UTF8.GetBytes(text);
        }
        else
        {
            try
            {
                json = YamlToJson(text);
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

        try
        {
            var document = JsonSerializer.Deserialize(json, RoutingConfigJsonContext.Default.RoutingConfigDocument);
            if (document is null)
            {
                errors.Add(new ConfigError("$", "the file is empty"));
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

    private static byte[] YamlToJson(string text)
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
                WriteNode(writer, stream.Documents[0].RootNode);
            }
        }

        return buffer.ToArray();
    }

    private static void WriteNode(Utf8JsonWriter writer, YamlNode node)
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
                    WriteNode(writer, value);
                }

                writer.WriteEndObject();
                break;
            case YamlSequenceNode sequence:
                writer.WriteStartArray();
                foreach (var child in sequence.Children)
                {
                    WriteNode(writer, child);
                }

                writer.WriteEndArray();
                break;
            case YamlScalarNode scalar:
                WriteScalar(writer, scalar);
                break;
            default:
                throw new YamlException(node.Start, node.End, "aliases and tags are not supported in the routing file");
        }
    }

    // YAML 1.2 core schema: unquoted scalars may be null, booleans or numbers; quoted ones are strings.
    private static void WriteScalar(Utf8JsonWriter writer, YamlScalarNode scalar)
    {
        var value = scalar.Value ?? string.Empty;
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
