using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal.Wires;

/// <summary>Small helpers for writing and reading the JSON of the provider wires.</summary>
internal static class JsonBytes
{
    /// <summary>Runs <paramref name="write"/> against a compact writer and returns the bytes.</summary>
    public static byte[] Write<TState>(TState state, Action<Utf8JsonWriter, TState> write)
    {
        using var buffer = new PooledBufferWriter(512);
        using (var writer = new Utf8JsonWriter(buffer, JsonFormat.WriterOptions))
        {
            write(writer, state);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Writes a string property as raw UTF-8 (emoji included), as the providers send text.</summary>
    public static void Text(Utf8JsonWriter writer, ReadOnlySpan<byte> name, string value) =>
        JsonText.Write(writer, name, JsonText.Encode(value));

    /// <summary>Writes a property whose value is JSON text; text that does not parse goes out as a string.</summary>
    public static void RawOrString(Utf8JsonWriter writer, ReadOnlySpan<byte> name, string json)
    {
        writer.WritePropertyName(name);
        try
        {
            using var document = JsonDocument.Parse(json);
            document.RootElement.WriteTo(writer);
        }
        catch (JsonException)
        {
            writer.WriteStringValue(json);
        }
    }

    public static string? String(JsonElement element, ReadOnlySpan<byte> name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    public static bool TryObject(JsonElement element, ReadOnlySpan<byte> name, out JsonElement value) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out value) && value.ValueKind == JsonValueKind.Object
            || Fail(out value);

    public static bool TryArray(JsonElement element, ReadOnlySpan<byte> name, out JsonElement value) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out value) && value.ValueKind == JsonValueKind.Array
            || Fail(out value);

    /// <summary>Characters of every <c>"text"</c> or <c>"content"</c> string anywhere under <paramref name="element"/>.</summary>
    public static long TextCharacters(JsonElement element)
    {
        long characters = 0;
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return element.GetString()?.Length ?? 0;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    characters += TextCharacters(item);
                }

                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    if ((property.NameEquals("text"u8) || property.NameEquals("content"u8)) && property.Value.ValueKind == JsonValueKind.String)
                    {
                        characters += property.Value.GetString()?.Length ?? 0;
                    }
                    else if (property.Value.ValueKind is JsonValueKind.Object or JsonValueKind.Array)
                    {
                        characters += TextCharacters(property.Value);
                    }
                }

                break;
        }

        return characters;
    }

    private static bool Fail(out JsonElement value)
    {
        value = default;
        return false;
    }
}
