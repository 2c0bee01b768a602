using System.Text.Json;

namespace ModelGateway.Wire;

/// <summary>JSON string literals as bytes, for text spliced into bodies without re-serializing them.</summary>
internal static class JsonLiteral
{
    /// <summary>The text of a JSON string literal (quotes included).</summary>
    public static string Decode(ReadOnlySpan<byte> literal)
    {
        var reader = new Utf8JsonReader(literal);
        return reader.Read() && reader.TokenType == JsonTokenType.String ? reader.GetString() ?? string.Empty : string.Empty;
    }

    /// <summary>The JSON string literal of <paramref name="text"/>, quotes included.</summary>
    public static byte[] Encode(string text) => JsonSerializer.SerializeToUtf8Bytes(text, WireJsonContext.Default.String);
}
