using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using ModelGateway.Canonical;

namespace ModelGateway.Caching;

/// <summary>
/// The cache key of a chat request: SHA-256 over the route, its cache generation, the scope's owner and
/// the canonical request written deterministically. The canonical request is the same whichever client
/// API sent it (chat completions or Anthropic Messages), so one entry answers every format; field
/// order, whitespace and the fields that do not change the answer (<c>stream</c>, <c>stream_options</c>,
/// <c>user</c>, <c>metadata</c>, <c>store</c>...) never reach it, because the canonical request does not carry them.
/// </summary>
internal static class CacheKey
{
    public const string Prefix = "mg:cache:";

    /// <summary>The owner an entry is shared within: the key id, the team, or everyone.</summary>
    public static string ScopeOwner(CacheScope scope, State.CallerIdentity caller) => scope switch
    {
        CacheScope.Global => "global",
        CacheScope.Team => "team:" + (caller.Team ?? ("key:" + (caller.KeyId ?? "anonymous"))),
        _ => "key:" + (caller.KeyId ?? "anonymous"),
    };

    public static string For(string route, CacheSettings settings, string owner, ChatRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            json.WriteStringValue(route);
            json.WriteStringValue(settings.Generation);
            json.WriteStringValue(owner);
            Write(json, request);
            json.WriteEndArray();
        }

        return Prefix + route + ":" + Convert.ToHexStringLower(SHA256.HashData(buffer.WrittenSpan));
    }

    /// <summary>The tag every entry of a route carries, for purging the route.</summary>
    public static string RouteTag(string route) => "route:" + route;

    /// <summary>The tag every entry of an owner carries (<c>key:ID</c>, <c>team:NAME</c>, <c>global</c>).</summary>
    public static string OwnerTag(string owner) => "owner:" + owner;

    /// <summary>The tag of one owner's entries on one route.</summary>
    public static string RouteOwnerTag(string route, string owner) => "route:" + route + "|owner:" + owner;

    // Properties in a fixed order; nulls written as null so that absent and present never collide.
    private static void Write(Utf8JsonWriter json, ChatRequest request)
    {
        json.WriteStartObject();
        json.WritePropertyName("system"u8);
        WriteParts(json, request.System);
        json.WriteStartArray("messages"u8);
        foreach (var message in request.Messages)
        {
            json.WriteStartObject();
            json.WriteNumber("role"u8, (int)message.Role);
            json.WriteString("name"u8, message.Name);
            json.WritePropertyName("parts"u8);
            WriteParts(json, message.Parts);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteStartArray("tools"u8);
        foreach (var tool in request.Tools)
        {
            json.WriteStartObject();
            json.WriteString("name"u8, tool.Name);
            json.WriteString("description"u8, tool.Description);
            json.WritePropertyName("parameters"u8);
            WriteSorted(json, tool.Parameters);
            WriteNullable(json, "strict"u8, tool.Strict);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteString("toolChoice"u8, request.ToolChoice is { } choice ? ((int)choice.Kind).ToString(CultureInfo.InvariantCulture) + ":" + choice.Name : null);
        WriteNullable(json, "parallel"u8, request.ParallelToolCalls);
        WriteNumber(json, "maxTokens"u8, request.MaxTokens);
        WriteNumber(json, "temperature"u8, request.Temperature);
        WriteNumber(json, "topP"u8, request.TopP);
        WriteNumber(json, "topK"u8, request.TopK);
        json.WriteStartArray("stop"u8);
        foreach (var stop in request.Stop)
        {
            json.WriteStringValue(stop);
        }

        json.WriteEndArray();
        if (request.Format is { } format)
        {
            json.WriteStartObject("format"u8);
            json.WriteNumber("kind"u8, (int)format.Kind);
            json.WriteString("name"u8, format.Name);
            json.WritePropertyName("schema"u8);
            WriteSorted(json, format.Schema);
            WriteNullable(json, "strict"u8, format.Strict);
            json.WriteEndObject();
        }

        if (request.Reasoning is { } reasoning)
        {
            json.WriteString("effort"u8, reasoning.Effort);
            WriteNumber(json, "budget"u8, reasoning.BudgetTokens);
        }

        WriteNumber(json, "seed"u8, request.Seed);
        WriteNumber(json, "presence"u8, request.PresencePenalty);
        WriteNumber(json, "frequency"u8, request.FrequencyPenalty);
        json.WriteNumber("n"u8, request.N);
        json.WriteEndObject();
    }

    private static void WriteParts(Utf8JsonWriter json, IEnumerable<ContentPart> parts)
    {
        json.WriteStartArray();
        foreach (var part in parts)
        {
            // Provider prompt-cache breakpoints (cache_control) change the bill, not the answer: left out.
            switch (part)
            {
                case TextPart text:
                    json.WriteStringValue(text.Text);
                    break;
                case ImagePart image:
                    json.WriteStartObject();
                    json.WriteString("image"u8, image.Url);
                    json.WriteString("type"u8, image.MediaType);
                    json.WriteString("data"u8, image.Base64);
                    json.WriteString("detail"u8, image.Detail);
                    json.WriteEndObject();
                    break;
                case DocumentPart document:
                    json.WriteStartObject();
                    json.WriteString("document"u8, document.Url);
                    json.WriteString("type"u8, document.MediaType);
                    json.WriteString("data"u8, document.Base64);
                    json.WriteString("title"u8, document.Title);
                    json.WriteEndObject();
                    break;
                case ToolCallPart call:
                    json.WriteStartObject();
                    json.WriteString("call"u8, call.Id);
                    json.WriteString("name"u8, call.Name);
                    json.WritePropertyName("arguments"u8);
                    WriteArguments(json, call.ArgumentsJson);
                    json.WriteEndObject();
                    break;
                case ToolResultPart result:
                    json.WriteStartObject();
                    json.WriteString("result"u8, result.ToolCallId);
                    json.WriteBoolean("error"u8, result.IsError);
                    json.WritePropertyName("content"u8);
                    WriteParts(json, result.Content);
                    json.WriteEndObject();
                    break;
                case ReasoningPart thought:
                    json.WriteStartObject();
                    json.WriteString("reasoning"u8, thought.Text);
                    json.WriteString("signature"u8, thought.Signature);
                    json.WriteEndObject();
                    break;
                case RedactedReasoningPart redacted:
                    json.WriteStartObject();
                    json.WriteString("redacted"u8, redacted.Data);
                    json.WriteEndObject();
                    break;
                default:
                    json.WriteStringValue(part.GetType().Name);
                    break;
            }
        }

        json.WriteEndArray();
    }

    // Tool-call arguments are JSON text: their key order must not matter either.
    private static void WriteArguments(Utf8JsonWriter json, string arguments)
    {
        try
        {
            using var document = JsonDocument.Parse(arguments);
            WriteSorted(json, document.RootElement);
        }
        catch (JsonException)
        {
            json.WriteStringValue(arguments);
        }
    }

    private static void WriteSorted(Utf8JsonWriter json, JsonElement? element)
    {
        if (element is not { } value)
        {
            json.WriteNullValue();
            return;
        }

        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                var properties = new List<JsonProperty>();
                foreach (var property in value.EnumerateObject())
                {
                    properties.Add(property);
                }

                properties.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
                json.WriteStartObject();
                foreach (var property in properties)
                {
                    json.WritePropertyName(property.Name);
                    WriteSorted(json, property.Value);
                }

                json.WriteEndObject();
                break;
            case JsonValueKind.Array:
                json.WriteStartArray();
                foreach (var item in value.EnumerateArray())
                {
                    WriteSorted(json, item);
                }

                json.WriteEndArray();
                break;
            default:
                value.WriteTo(json);
                break;
        }
    }

    private static void WriteNullable(Utf8JsonWriter json, ReadOnlySpan<byte> name, bool? value)
    {
        if (value is { } v)
        {
            json.WriteBoolean(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void WriteNumber(Utf8JsonWriter json, ReadOnlySpan<byte> name, double? value)
    {
        if (value is { } v)
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void WriteNumber(Utf8JsonWriter json, ReadOnlySpan<byte> name, long? value)
    {
        if (value is { } v)
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
