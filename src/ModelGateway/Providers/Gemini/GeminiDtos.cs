using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelGateway.Providers.Gemini;

// Gemini API wire types (https://ai.google.dev/api/generate-content), shared by Gemini models on
// Vertex AI, which take the same GenerateContentRequest. Only what the gateway writes or reads whole;
// streamed answers are read with Utf8JsonReader by GeminiStreamDecoder. Google reads proto3 JSON, so
// field names are lowerCamelCase and absent fields are left out.

/// <summary>A <c>GenerateContentRequest</c>.</summary>
internal sealed class GeminiRequest
{
    [JsonPropertyName("contents")]
    public List<GeminiContent> Contents { get; set; } = [];

    [JsonPropertyName("systemInstruction")]
    public GeminiContent? SystemInstruction { get; set; }

    [JsonPropertyName("tools")]
    public List<GeminiTool>? Tools { get; set; }

    [JsonPropertyName("toolConfig")]
    public GeminiToolConfig? ToolConfig { get; set; }

    [JsonPropertyName("generationConfig")]
    public GeminiGenerationConfig? GenerationConfig { get; set; }
}

/// <summary>One turn: <c>user</c> (also function responses) or <c>model</c>; the system instruction has no role.</summary>
internal sealed class GeminiContent
{
    [JsonPropertyName("role")]
    public string? Role { get; set; }

    [JsonPropertyName("parts")]
    public List<GeminiPart> Parts { get; set; } = [];
}

/// <summary>A part: exactly one of text, inline bytes, a file URI, a function call or a function response.</summary>
internal sealed class GeminiPart
{
    [JsonPropertyName("text")]
    public string? Text { get; set; }

    /// <summary>True for a summary of the model's thinking (answers only).</summary>
    [JsonPropertyName("thought")]
    public bool? Thought { get; set; }

    /// <summary>Opaque state of the model's thinking, sent back on the part it came with.</summary>
    [JsonPropertyName("thoughtSignature")]
    public string? ThoughtSignature { get; set; }

    [JsonPropertyName("inlineData")]
    public GeminiBlob? InlineData { get; set; }

    [JsonPropertyName("fileData")]
    public GeminiFileData? FileData { get; set; }

    [JsonPropertyName("functionCall")]
    public GeminiFunctionCall? FunctionCall { get; set; }

    [JsonPropertyName("functionResponse")]
    public GeminiFunctionResponse? FunctionResponse { get; set; }
}

internal sealed class GeminiBlob
{
    [JsonPropertyName("mimeType")]
    public string MimeType { get; set; } = "application/octet-stream";

    /// <summary>Base64 bytes.</summary>
    [JsonPropertyName("data")]
    public string Data { get; set; } = string.Empty;
}

/// <summary>A file Google itself holds: a Gemini Files API URI, or a <c>gs://</c> object on Vertex AI.</summary>
internal sealed class GeminiFileData
{
    [JsonPropertyName("mimeType")]
    public string? MimeType { get; set; }

    [JsonPropertyName("fileUri")]
    public string FileUri { get; set; } = string.Empty;
}

internal sealed class GeminiFunctionCall
{
    [JsonPropertyName("name")]
    public string Name { get; set; } = string.Empty;

    /// <summary>The arguments, a JSON object.</summary>
    [JsonPropertyName("args")]
    public JsonElement Args { get; set; }
}

internal sealed class GeminiFunctionResponse
{
    /// <summary>The called function's name: Gemini matches responses to calls by name and order, not by id.</summary>
    [JsonPropertyName("name")]
    public string Name { get; set; } = string.Empty;

    /// <summary>A JSON object; by Google's convention <c>output</c> holds the result and <c>error</c> a failure.</summary>
    [JsonPropertyName("response")]
    public JsonElement Response { get; set; }
}

internal sealed class GeminiTool
{
    [JsonPropertyName("functionDeclarations")]
    public List<GeminiFunctionDeclaration> FunctionDeclarations { get; set; } = [];
}

internal sealed class GeminiFunctionDeclaration
{
    [JsonPropertyName("name")]
    public string Name { get; set; } = string.Empty;

    [JsonPropertyName("description")]
    public string? Description { get; set; }

    /// <summary>The parameters as JSON Schema, as clients wrote them (the OpenAPI-subset <c>parameters</c> field is not used).</summary>
    [JsonPropertyName("parametersJsonSchema")]
    public JsonElement? ParametersJsonSchema { get; set; }
}

internal sealed class GeminiToolConfig
{
    [JsonPropertyName("functionCallingConfig")]
    public GeminiFunctionCallingConfig FunctionCallingConfig { get; set; } = new();
}

internal sealed class GeminiFunctionCallingConfig
{
    /// <summary><c>AUTO</c>, <c>ANY</c> (some call is required) or <c>NONE</c>.</summary>
    [JsonPropertyName("mode")]
    public string Mode { get; set; } = "AUTO";

    [JsonPropertyName("allowedFunctionNames")]
    public List<string>? AllowedFunctionNames { get; set; }
}

internal sealed class GeminiGenerationConfig
{
    [JsonPropertyName("temperature")]
    public double? Temperature { get; set; }

    [JsonPropertyName("topP")]
    public double? TopP { get; set; }

    [JsonPropertyName("topK")]
    public int? TopK { get; set; }

    [JsonPropertyName("maxOutputTokens")]
    public int? MaxOutputTokens { get; set; }

    [JsonPropertyName("stopSequences")]
    public List<string>? StopSequences { get; set; }

    [JsonPropertyName("seed")]
    public long? Seed { get; set; }

    [JsonPropertyName("presencePenalty")]
    public double? PresencePenalty { get; set; }

    [JsonPropertyName("frequencyPenalty")]
    public double? FrequencyPenalty { get; set; }

    /// <summary><c>application/json</c> for JSON mode.</summary>
    [JsonPropertyName("responseMimeType")]
    public string? ResponseMimeType { get; set; }

    /// <summary>JSON Schema the answer must match; Google's alternative to the OpenAPI-subset <c>responseSchema</c>.</summary>
    [JsonPropertyName("responseJsonSchema")]
    public JsonElement? ResponseJsonSchema { get; set; }

    [JsonPropertyName("thinkingConfig")]
    public GeminiThinkingConfig? ThinkingConfig { get; set; }
}

internal sealed class GeminiThinkingConfig
{
    [JsonPropertyName("includeThoughts")]
    public bool? IncludeThoughts { get; set; }

    [JsonPropertyName("thinkingBudget")]
    public int? ThinkingBudget { get; set; }
}

/// <summary>A <c>BatchEmbedContentsRequest</c>.</summary>
internal sealed class GeminiBatchEmbedRequest
{
    [JsonPropertyName("requests")]
    public List<GeminiEmbedRequest> Requests { get; set; } = [];
}

internal sealed class GeminiEmbedRequest
{
    /// <summary><c>models/{model}</c>: each request repeats the model of the URL.</summary>
    [JsonPropertyName("model")]
    public string Model { get; set; } = string.Empty;

    [JsonPropertyName("content")]
    public GeminiContent Content { get; set; } = new();

    [JsonPropertyName("outputDimensionality")]
    public int? OutputDimensionality { get; set; }
}

/// <summary>A <c>BatchEmbedContentsResponse</c>: one embedding per request, in order.</summary>
internal sealed class GeminiBatchEmbedResponse
{
    [JsonPropertyName("embeddings")]
    public List<GeminiEmbedding>? Embeddings { get; set; }
}

internal sealed class GeminiEmbedding
{
    [JsonPropertyName("values")]
    public float[] Values { get; set; } = [];
}

/// <summary>Google's error shape, shared by every Google API: <c>{"error":{"code","message","status","details"}}</c>.</summary>
internal sealed class GoogleErrorBody
{
    [JsonPropertyName("error")]
    public GoogleErrorDetail? Error { get; set; }
}

internal sealed class GoogleErrorDetail
{
    [JsonPropertyName("code")]
    public int? Code { get; set; }

    [JsonPropertyName("message")]
    public string? Message { get; set; }

    /// <summary>The gRPC status name: <c>INVALID_ARGUMENT</c>, <c>RESOURCE_EXHAUSTED</c>, <c>UNAVAILABLE</c>...</summary>
    [JsonPropertyName("status")]
    public string? Status { get; set; }

    /// <summary><c>google.rpc</c> details, each with its <c>@type</c> (<c>RetryInfo</c>, <c>ErrorInfo</c>...).</summary>
    [JsonPropertyName("details")]
    public List<JsonElement>? Details { get; set; }
}

[JsonSourceGenerationOptions(
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(GeminiRequest))]
[JsonSerializable(typeof(GeminiBatchEmbedRequest))]
[JsonSerializable(typeof(GeminiBatchEmbedResponse))]
[JsonSerializable(typeof(GoogleErrorBody))]
internal sealed partial class GeminiJsonContext : JsonSerializerContext;
