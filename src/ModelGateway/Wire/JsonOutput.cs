using System.Text.Encodings.Web;
using System.Text.Json;

namespace ModelGateway.Wire;

/// <summary>How the gateway writes its own JSON: compact, and escaping only what JSON requires (API responses are never embedded in HTML).</summary>
internal static class JsonOutput
{
    public static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    public static readonly JsonWriterOptions Indented = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = true };
}

/// <summary>Source-generated metadata for the few plain values the wire code serializes.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
[System.Text.Json.Serialization.JsonSerializable(typeof(JsonElement))]
internal sealed partial class WireJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
