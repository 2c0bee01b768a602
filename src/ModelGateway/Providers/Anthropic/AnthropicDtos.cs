using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelGateway.Providers.Anthropic;

// Anthropic Messages API wire types (https://docs.anthropic.com/en/api/messages). Only what the
// gateway reads or writes; unknown fields are ignored when reading. The Anthropic client protocol
// reads client requests with the same types.

/// <summary>A Messages API request.</summary>
internal sealed class AnthropicRequest
{
    [JsonPropertyName("model")]
    public string? Model { get; set; }

    /// <summary>Vertex AI carries the API version in the body instead of a header, and takes no model.</summary>
    [JsonPropertyName("anthropic_version")]
    public string? AnthropicVersion { get; set; }

    [JsonPropertyName("max_tokens")]
    public int MaxTokens { get; set; }

    /// <summary>A string, or an array of text blocks (with <c>cache_control</c>); always written as blocks.</summary>
    [JsonPropertyName("system")]
    [JsonConverter(typeof(AnthropicContentConverter))]
    public List<AnthropicBlock>? System { get; set; }

    [JsonPropertyName("messages")]
    public List<AnthropicMessage> Messages { get; set; } = [];

    [JsonPropertyName("tools")]
    public List<AnthropicTool>? Tools { get; set; }

    [JsonPropertyName("tool_choice")]
    public AnthropicToolChoice? ToolChoice { get; set; }

    [JsonPropertyName("temperature")]
    public double? Temperature { get; set; }

    [JsonPropertyName("top_p")]
    public double? TopP { get; set; }

    [JsonPropertyName("top_k")]
    public int? TopK { get; set; }

    [JsonPropertyName("stop_sequences")]
    public List<string>? StopSequences { get; set; }

    [JsonPropertyName("stream")]
    public bool? Stream { get; set; }

    [JsonPropertyName("metadata")]
    public AnthropicMetadata? Metadata { get; set; }

    /// <summary><c>{"type":"enabled","budget_tokens":N}</c>, <c>{"type":"adaptive"}</c> or <c>{"type":"disabled"}</c>.</summary>
    [JsonPropertyName("thinking")]
    public AnthropicThinking? Thinking { get; set; }

    /// <summary>
    /// Fields the gateway does not model (<c>context_management</c>, <c>output_config</c>, <c>service_tier</c>...),
    /// as a client sent them: the Anthropic client protocol maps what has an equivalent and names the rest as dropped.
    /// </summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; set; }
}

internal sealed class AnthropicMessage
{
    [JsonPropertyName("role")]
    public string Role { get; set; } = "user";

    /// <summary>A string or an array of content blocks; always written as blocks.</summary>
    [JsonPropertyName("content")]
    [JsonConverter(typeof(AnthropicContentConverter))]
    public List<AnthropicBlock> Content { get; set; } = [];
}

/// <summary>
/// A content block, written with its own type's fields. Block types the gateway does not model
/// (server tool results, search results...) read as this base type, their fields kept in
/// <see cref="Extra"/>.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", IgnoreUnrecognizedTypeDiscriminators = true)]
[JsonDerivedType(typeof(AnthropicTextBlock), "text")]
[JsonDerivedType(typeof(AnthropicImageBlock), "image")]
[JsonDerivedType(typeof(AnthropicDocumentBlock), "document")]
[JsonDerivedType(typeof(AnthropicToolUseBlock), "tool_use")]
[JsonDerivedType(typeof(AnthropicToolResultBlock), "tool_result")]
[JsonDerivedType(typeof(AnthropicThinkingBlock), "thinking")]
[JsonDerivedType(typeof(AnthropicRedactedThinkingBlock), "redacted_thinking")]
internal class AnthropicBlock
{
    [JsonPropertyName("cache_control")]
    public AnthropicCacheControl? CacheControl { get; set; }

    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; set; }
}

internal sealed class AnthropicTextBlock : AnthropicBlock
{
    [JsonPropertyName("text")]
    public string Text { get; set; } = string.Empty;
}

internal sealed class AnthropicImageBlock : AnthropicBlock
{
    [JsonPropertyName("source")]
    public AnthropicSource Source { get; set; } = new();
}

internal sealed class AnthropicDocumentBlock : AnthropicBlock
{
    [JsonPropertyName("source")]
    public AnthropicSource Source { get; set; } = new();

    [JsonPropertyName("title")]
    public string? Title { get; set; }
}

/// <summary><c>{"type":"base64","media_type","data"}</c> or <c>{"type":"url","url"}</c>.</summary>
internal sealed class AnthropicSource
{
    [JsonPropertyName("type")]
    public string Type { get; set; } = "base64";

    [JsonPropertyName("media_type")]
    public string? MediaType { get; set; }

    [JsonPropertyName("data")]
    public string? Data { get; set; }

    [JsonPropertyName("url")]
    public string? Url { get; set; }
}

internal sealed class AnthropicToolUseBlock : AnthropicBlock
{
    [JsonPropertyName("id")]
    public string Id { get; set; } = string.Empty;

    [JsonPropertyName("name")]
    public string Name { get; set; } = string.Empty;

    [JsonPropertyName("input")]
    public JsonElement Input { get; set; }
}

internal sealed class AnthropicToolResultBlock : AnthropicBlock
{
    [JsonPropertyName("tool_use_id")]
    public string ToolUseId { get; set; } = string.Empty;

    /// <summary>A string or an array of text and image blocks; always written as blocks.</summary>
    [JsonPropertyName("content")]
    [JsonConverter(typeof(AnthropicContentConverter))]
    public List<AnthropicBlock>? Content { get; set; }

    [JsonPropertyName("is_error")]
    public bool? IsError { get; set; }
}

internal sealed class AnthropicThinkingBlock : AnthropicBlock
{
    [JsonPropertyName("thinking")]
    public string Thinking { get; set; } = string.Empty;

    [JsonPropertyName("signature")]
    public string? Signature { get; set; }
}

internal sealed class AnthropicRedactedThinkingBlock : AnthropicBlock
{
    [JsonPropertyName("data")]
    public string Data { get; set; } = string.Empty;
}

internal sealed class AnthropicCacheControl
{
    [JsonPropertyName("type")]
    public string Type { get; set; } = "ephemeral";

    [JsonPropertyName("ttl")]
    public string? Ttl { get; set; }
}

/// <summary>A tool: a client function (no <c>type</c>, or <c>custom</c>) or a server tool such as <c>web_search_20250305</c>.</summary>
internal sealed class AnthropicTool
{
    [JsonPropertyName("type")]
    public string? Type { get; set; }

    [JsonPropertyName("name")]
    public string Name { get; set; } = string.Empty;

    [JsonPropertyName("description")]
    public string? Description { get; set; }

    [JsonPropertyName("input_schema")]
    public JsonElement? InputSchema { get; set; }

    [JsonPropertyName("cache_control")]
    public AnthropicCacheControl? CacheControl { get; set; }

    /// <summary>Fields of newer or server tools (<c>defer_loading</c>, <c>max_uses</c>...), kept as they came.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Extra { get; set; }
}

internal sealed class AnthropicToolChoice
{
    /// <summary><c>auto</c>, <c>any</c>, <c>tool</c> or <c>none</c>.</summary>
    [JsonPropertyName("type")]
    public string Type { get; set; } = "auto";

    [JsonPropertyName("name")]
    public string? Name { get; set; }

    [JsonPropertyName("disable_parallel_tool_use")]
    public bool? DisableParallelToolUse { get; set; }
}

internal sealed class AnthropicMetadata
{
    [JsonPropertyName("user_id")]
    public string? UserId { get; set; }
}

internal sealed class AnthropicThinking
{
    [JsonPropertyName("type")]
    public string Type { get; set; } = "enabled";

    [JsonPropertyName("budget_tokens")]
    public int? BudgetTokens { get; set; }

    /// <summary><c>omitted</c>: the client wants thinking blocks without their text (signature only).</summary>
    [JsonPropertyName("display")]
    public string? Display { get; set; }
}

/// <summary>A non-streamed answer, and the message of a stream's <c>message_start</c>.</summary>
internal sealed class AnthropicResponse
{
    [JsonPropertyName("id")]
    public string? Id { get; set; }

    [JsonPropertyName("type")]
    public string? Type { get; set; }

    [JsonPropertyName("model")]
    public string? Model { get; set; }

    [JsonPropertyName("content")]
    public List<AnthropicBlock> Content { get; set; } = [];

    [JsonPropertyName("stop_reason")]
    public string? StopReason { get; set; }

    [JsonPropertyName("usage")]
    public AnthropicUsage? Usage { get; set; }

    [JsonPropertyName("error")]
    public AnthropicErrorDetail? Error { get; set; }
}

/// <summary>
/// Anthropic's usage: <c>input_tokens</c> excludes the cache reads and writes, which are counted
/// apart; canonical input is their sum.
/// </summary>
internal sealed class AnthropicUsage
{
    [JsonPropertyName("input_tokens")]
    public long? InputTokens { get; set; }

    [JsonPropertyName("output_tokens")]
    public long? OutputTokens { get; set; }

    [JsonPropertyName("cache_creation_input_tokens")]
    public long? CacheCreationInputTokens { get; set; }

    [JsonPropertyName("cache_read_input_tokens")]
    public long? CacheReadInputTokens { get; set; }
}

/// <summary><c>{"type":"error","error":{"type","message"}}</c>.</summary>
internal sealed class AnthropicErrorBody
{
    [JsonPropertyName("type")]
    public string? Type { get; set; }

    [JsonPropertyName("error")]
    public AnthropicErrorDetail? Error { get; set; }
}

internal sealed class AnthropicErrorDetail
{
    [JsonPropertyName("type")]
    public string? Type { get; set; }

    [JsonPropertyName("message")]
    public string? Message { get; set; }
}

[JsonSourceGenerationOptions(
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowOutOfOrderMetadataProperties = true,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(AnthropicRequest))]
[JsonSerializable(typeof(AnthropicResponse))]
[JsonSerializable(typeof(AnthropicErrorBody))]
[JsonSerializable(typeof(AnthropicTool))]
[JsonSerializable(typeof(List<AnthropicBlock>))]
internal sealed partial class AnthropicJsonContext : JsonSerializerContext;

/// <summary>Content that Anthropic accepts as a plain string or as an array of blocks: read both, write blocks.</summary>
internal sealed class AnthropicContentConverter : JsonConverter<List<AnthropicBlock>>
{
    public override List<AnthropicBlock>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.Null => null,
        JsonTokenType.String => [new AnthropicTextBlock { Text = reader.GetString()! }],
        JsonTokenType.StartArray => JsonSerializer.Deserialize(ref reader, AnthropicJsonContext.Default.ListAnthropicBlock),
        _ => throw new JsonException("content must be a string or an array of content blocks"),
    };

    public override void Write(Utf8JsonWriter writer, List<AnthropicBlock> value, JsonSerializerOptions options)
        => JsonSerializer.Serialize(writer, value, AnthropicJsonContext.Default.ListAnthropicBlock);
}
