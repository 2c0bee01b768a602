using System.Text.Json;
using ModelGateway.Wire;

namespace ModelGateway.Canonical;

/// <summary>Who speaks a message.</summary>
internal enum ChatRole : byte
{
    System,
    User,
    Assistant,

    /// <summary>Tool results (OpenAI's <c>tool</c> role; Anthropic carries them in a user turn).</summary>
    Tool,
}

/// <summary>A provider prompt-cache breakpoint (Anthropic's <c>cache_control</c>, Bedrock's <c>cachePoint</c>).</summary>
internal sealed record CacheHint(string? Ttl = null);

/// <summary>One piece of a message.</summary>
internal abstract record ContentPart
{
    /// <summary>A prompt-cache breakpoint after this part, when the client marked one.</summary>
    public CacheHint? Cache { get; init; }
}

internal sealed record TextPart(string Text) : ContentPart;

/// <summary>An image, by URL (which some providers cannot take) or inline base64 bytes.</summary>
internal sealed record ImagePart(string? Url, string? MediaType, string? Base64, string? Detail = null) : ContentPart
{
    public bool IsInline => Base64 is not null;
}

/// <summary>A document (PDF, text) by URL or inline base64.</summary>
internal sealed record DocumentPart(string? Url, string? MediaType, string? Base64, string? Title = null) : ContentPart;

/// <summary>A call the assistant made; <see cref="ArgumentsJson"/> is its JSON arguments as text.</summary>
internal sealed record ToolCallPart(string Id, string Name, string ArgumentsJson) : ContentPart;

/// <summary>The result of a tool call, sent back by the client.</summary>
internal sealed record ToolResultPart(string ToolCallId, IReadOnlyList<ContentPart> Content, bool IsError = false) : ContentPart;

/// <summary>The model's visible reasoning, with the provider's signature when it has one.</summary>
internal sealed record ReasoningPart(string Text, string? Signature) : ContentPart;

/// <summary>Reasoning the provider encrypted; only the provider that made it can read it back.</summary>
internal sealed record RedactedReasoningPart(string Data) : ContentPart;

internal sealed class ChatMessage(ChatRole role, List<ContentPart> parts)
{
    public ChatRole Role { get; } = role;

    public List<ContentPart> Parts { get; } = parts;

    public string? Name { get; init; }

    public static ChatMessage Text(ChatRole role, string text) => new(role, [new TextPart(text)]);
}

/// <summary>A function the model may call; <see cref="Parameters"/> is its JSON Schema.</summary>
internal sealed record ToolDefinition(string Name, string? Description, JsonElement? Parameters, bool? Strict = null)
{
    public CacheHint? Cache { get; init; }
}

internal enum ToolChoiceKind : byte
{
    Auto,
    None,

    /// <summary>Some tool must be called (OpenAI <c>required</c>, Anthropic <c>any</c>).</summary>
    Required,

    /// <summary>The tool named <see cref="ToolChoice.Name"/> must be called.</summary>
    Tool,
}

internal sealed record ToolChoice(ToolChoiceKind Kind, string? Name = null);

/// <summary>Structured output: JSON, optionally matching <see cref="Schema"/>.</summary>
internal sealed record OutputFormat(ResponseFormatKind Kind, string? Name = null, JsonElement? Schema = null, bool? Strict = null)
{
    /// <summary>
    /// A JSON-schema format from OpenAI's definition object (<c>{name, schema, strict}</c>): chat completions nest
    /// it in <c>response_format.json_schema</c>, the Responses API puts it in <c>text.format</c> itself.
    /// </summary>
    public static OutputFormat JsonSchema(JsonElement definition) => new(
        ResponseFormatKind.JsonSchema,
        JsonFields.String(definition, "name"),
        definition.ValueKind == JsonValueKind.Object && definition.TryGetProperty("schema", out var schema) && schema.ValueKind == JsonValueKind.Object ? schema.Clone() : null,
        JsonFields.Boolean(definition, "strict"));
}

/// <summary>How hard the model should think: an effort level and/or a token budget.</summary>
internal sealed record ReasoningRequest(string? Effort, int? BudgetTokens);

/// <summary>
/// A chat request in no provider's wire: what every client protocol parses into when the chosen
/// deployment speaks another wire, and what every provider's request mapper reads. Built once per
/// request, only on the translated path; the pass-through path never builds it.
/// </summary>
internal sealed class ChatRequest
{
    /// <summary>System instructions, in order (system and developer messages, Anthropic <c>system</c> blocks).</summary>
    public List<TextPart> System { get; } = [];

    public List<ChatMessage> Messages { get; private set; } = [];

    public List<ToolDefinition> Tools { get; } = [];

    public ToolChoice? ToolChoice { get; set; }

    public bool? ParallelToolCalls { get; set; }

    public int? MaxTokens { get; set; }

    public double? Temperature { get; set; }

    public double? TopP { get; set; }

    public int? TopK { get; set; }

    public List<string> Stop { get; } = [];

    public OutputFormat? Format { get; set; }

    public ReasoningRequest? Reasoning { get; set; }

    public bool Stream { get; set; }

    /// <summary>An end-user id for the provider's abuse monitoring.</summary>
    public string? User { get; set; }

    public long? Seed { get; set; }

    public double? PresencePenalty { get; set; }

    public double? FrequencyPenalty { get; set; }

    /// <summary>Choices asked for; translating providers serve one.</summary>
    public int N { get; set; } = 1;

    /// <summary>Names of client fields the mapping had to drop, for the response header and the metric.</summary>
    public List<string> Dropped { get; } = [];

    /// <summary>A shallow copy asking for at most <paramref name="maxTokens"/> (a client's ceiling clamped to the deployment's limit).</summary>
    public ChatRequest WithMaxTokens(int maxTokens)
    {
        var copy = (ChatRequest)MemberwiseClone();
        copy.MaxTokens = maxTokens;
        return copy;
    }

    /// <summary>A shallow copy whose message list can grow (continuation appends a prefill) without touching this one.</summary>
    public ChatRequest WithAssistantPrefill(string text)
    {
        var copy = (ChatRequest)MemberwiseClone();
        copy.Messages = [.. Messages, ChatMessage.Text(ChatRole.Assistant, text)];
        return copy;
    }
}
