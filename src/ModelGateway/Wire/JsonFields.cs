using System.Text.Json;

namespace ModelGateway.Wire;

/// <summary>Typed reads of an optional member of a JSON object, where a missing or mistyped member is simply absent.</summary>
internal static class JsonFields
{
    public static string? String(JsonElement element, string name)
        => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    public static bool? Boolean(JsonElement element, string name)
        => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : null;
}
