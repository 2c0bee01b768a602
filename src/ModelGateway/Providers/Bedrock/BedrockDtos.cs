using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelGateway.Providers.Bedrock;

// Bedrock Runtime Converse and ConverseStream wire types
// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html). A content block is a
// union: exactly one member is set. Only what the gateway writes or reads; unknown fields are ignored.

/// <summary>A Converse (or ConverseStream) request; the model id travels in the path, not here.</summary>
internal sealed class ConverseRequest
{
    public List<BedrockMessage> Messages { get; set; } = [];

    public List<BedrockContentBlock>? System { get; set; }

    public BedrockInferenceConfig? InferenceConfig { get; set; }

    public BedrockToolConfig? ToolConfig { get; set; }

    /// <summary>The model's own fields Converse does not model: Claude's <c>thinking</c> and <c>top_k</c>.</summary>
    public BedrockAdditionalFields? AdditionalModelRequestFields { get; set; }
}

internal sealed class BedrockMessage
{
    public string Role { get; set; } = "user";

    public List<BedrockContentBlock> Content { get; set; } = [];
}

/// <summary>One content block: text, image, document, tool use or result, reasoning, JSON (in tool results) or a cache point.</summary>
internal sealed class BedrockContentBlock
{
    public string? Text { get; set; }

    public BedrockImage? Image { get; set; }

    public BedrockDocument? Document { get; set; }

    public BedrockToolUse? ToolUse { get; set; }

    public BedrockToolResult? ToolResult { get; set; }

    public BedrockReasoningContent? ReasoningContent { get; set; }

    public JsonElement? Json { get; set; }

    public BedrockCachePoint? CachePoint { get; set; }
}

/// <summary><c>format</c> is png, jpeg, gif or webp; the bytes are base64 in JSON.</summary>
internal sealed class BedrockImage
{
    public string Format { get; set; } = "png";

    public BedrockSource Source { get; set; } = new();
}

/// <summary><c>format</c> is pdf, csv, doc, docx, xls, xlsx, html, txt or md; <c>name</c> is required.</summary>
internal sealed class BedrockDocument
{
    public string Format { get; set; } = "pdf";

    public string Name { get; set; } = "document";

    public BedrockSource Source { get; set; } = new();
}

internal sealed class BedrockSource
{
    public string? Bytes { get; set; }
}

internal sealed class BedrockToolUse
{
    public string ToolUseId { get; set; } = string.Empty;

    public string Name { get; set; } = string.Empty;

    public JsonElement Input { get; set; }
}

internal sealed class BedrockToolResult
{
    public string ToolUseId { get; set; } = string.Empty;

    public List<BedrockContentBlock> Content { get; set; } = [];

    /// <summary><c>success</c> or <c>error</c>.</summary>
    public string? Status { get; set; }
}

internal sealed class BedrockReasoningContent
{
    public BedrockReasoningText? ReasoningText { get; set; }

    /// <summary>Encrypted reasoning, base64; only the model that wrote it can read it back.</summary>
    public string? RedactedContent { get; set; }
}

internal sealed class BedrockReasoningText
{
    public string Text { get; set; } = string.Empty;

    public string? Signature { get; set; }
}

/// <summary>A prompt-cache checkpoint: everything before it may be cached.</summary>
internal sealed class BedrockCachePoint
{
    public string Type { get; set; } = "default";

    public static BedrockCachePoint Default => new();
}

internal sealed class BedrockInferenceConfig
{
    public int? MaxTokens { get; set; }

    public double? Temperature { get; set; }

    public double? TopP { get; set; }

    public List<string>? StopSequences { get; set; }
}

internal sealed class BedrockToolConfig
{
    public List<BedrockTool> Tools { get; set; } = [];

    public BedrockToolChoice? ToolChoice { get; set; }
}

/// <summary>A tool specification, or a cache point after the tools before it.</summary>
internal sealed class BedrockTool
{
    public BedrockToolSpec? ToolSpec { get; set; }

    public BedrockCachePoint? CachePoint { get; set; }
}

internal sealed class BedrockToolSpec
{
    public string Name { get; set; } = string.Empty;

    public string? Description { get; set; }

    public BedrockInputSchema InputSchema { get; set; } = new();
}

internal sealed class BedrockInputSchema
{
    public JsonElement Json { get; set; }
}

/// <summary><c>{"auto":{}}</c>, <c>{"any":{}}</c> or <c>{"tool":{"name":..}}</c>.</summary>
internal sealed class BedrockToolChoice
{
    public BedrockEmpty? Auto { get; set; }

    public BedrockEmpty? Any { get; set; }

    public BedrockNamedTool? Tool { get; set; }
}

/// <summary>Written as <c>{}</c>.</summary>
internal sealed class BedrockEmpty;

internal sealed class BedrockNamedTool
{
    public string Name { get; set; } = string.Empty;
}

/// <summary>Claude's own request fields, in Anthropic's snake case.</summary>
internal sealed class BedrockAdditionalFields
{
    [JsonPropertyName("thinking")]
    public BedrockThinking? Thinking { get; set; }

    [JsonPropertyName("top_k")]
    public int? TopK { get; set; }
}

internal sealed class BedrockThinking
{
    [JsonPropertyName("type")]
    public string Type { get; set; } = "enabled";

    [JsonPropertyName("budget_tokens")]
    public int BudgetTokens { get; set; }
}

/// <summary>A Converse answer.</summary>
internal sealed class ConverseResponse
{
    public BedrockOutput? Output { get; set; }

    public string? StopReason { get; set; }

    public BedrockUsage? Usage { get; set; }
}

internal sealed class BedrockOutput
{
    public BedrockMessage? Message { get; set; }
}

/// <summary>Token counts; <c>inputTokens</c> excludes the cache reads and writes, reported beside it.</summary>
internal sealed class BedrockUsage
{
    public long? InputTokens { get; set; }

    public long? OutputTokens { get; set; }

    public long? TotalTokens { get; set; }

    public long? CacheReadInputTokens { get; set; }

    public long? CacheWriteInputTokens { get; set; }
}

/// <summary>AWS's JSON error body; the exception's name travels in <c>x-amzn-ErrorType</c> (or <c>__type</c>).</summary>
internal sealed class BedrockErrorBody
{
    [JsonPropertyName("message")]
    public string? Message { get; set; }

    [JsonPropertyName("Message")]
    public string? UpperMessage { get; set; }

    [JsonPropertyName("__type")]
    public string? Type { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(ConverseRequest))]
[JsonSerializable(typeof(ConverseResponse))]
[JsonSerializable(typeof(BedrockErrorBody))]
internal sealed partial class BedrockJsonContext : JsonSerializerContext;
