using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.OpenAI;

/// <summary>
/// Reads an OpenAI chat completions body into the canonical request, for deployments that speak
/// another wire. The body was already validated by <see cref="RequestParser"/>; what cannot be
/// expressed canonically (logprobs, logit_bias, audio) is named in <see cref="ChatRequest.Dropped"/>.
/// </summary>
internal static class OpenAIRequestReader
{
    public static ChatRequest Read(ReadOnlyMemory<byte> body)
    {
        using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 256 });
        var root = document.RootElement;
        var request = new ChatRequest();
        foreach (var property in root.EnumerateObject())
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "messages":
                    foreach (var message in value.EnumerateArray())
                    {
                        ReadMessage(request, message);
                    }

                    break;
                case "tools":
                    if (value.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var tool in value.EnumerateArray())
                        {
                            if (tool.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object)
                            {
                                request.Tools.Add(new ToolDefinition(
                                    String(function, "name") ?? string.Empty,
                                    String(function, "description"),
                                    function.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object ? parameters.Clone() : null,
                                    function.TryGetProperty("strict", out var strict) && strict.ValueKind is JsonValueKind.True or JsonValueKind.False ? strict.GetBoolean() : null)
                                {
                                    Cache = ReadCache(tool),
                                });
                            }
                        }
                    }

                    break;
                case "functions":
                    if (value.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var function in value.EnumerateArray())
                        {
                            request.Tools.Add(new ToolDefinition(String(function, "name") ?? string.Empty, String(function, "description"),
                                function.TryGetProperty("parameters", out var parameters) ? parameters.Clone() : null));
                        }
                    }

                    break;
                case "tool_choice" or "function_call":
                    request.ToolChoice = ReadToolChoice(value);
                    break;
                case "parallel_tool_calls" when value.ValueKind is JsonValueKind.True or JsonValueKind.False:
                    request.ParallelToolCalls = value.GetBoolean();
                    break;
                case "max_tokens" or "max_completion_tokens" when value.ValueKind == JsonValueKind.Number:
                    request.MaxTokens = request.MaxTokens is { } existing ? Math.Min(existing, value.GetInt32()) : value.GetInt32();
                    break;
                case "temperature" when value.ValueKind == JsonValueKind.Number:
                    request.Temperature = value.GetDouble();
                    break;
                case "top_p" when value.ValueKind == JsonValueKind.Number:
                    request.TopP = value.GetDouble();
                    break;
                case "presence_penalty" when value.ValueKind == JsonValueKind.Number:
                    request.PresencePenalty = value.GetDouble();
                    break;
                case "frequency_penalty" when value.ValueKind == JsonValueKind.Number:
                    request.FrequencyPenalty = value.GetDouble();
                    break;
                case "seed" when value.ValueKind == JsonValueKind.Number:
                    request.Seed = value.GetInt64();
                    break;
                case "n" when value.ValueKind == JsonValueKind.Number:
                    request.N = value.GetInt32();
                    break;
                case "stop":
                    if (value.ValueKind == JsonValueKind.String)
                    {
                        request.Stop.Add(value.GetString()!);
                    }
                    else if (value.ValueKind == JsonValueKind.Array)
                    {
                        request.Stop.AddRange(value.EnumerateArray().Where(s => s.ValueKind == JsonValueKind.String).Select(s => s.GetString()!));
                    }

                    break;
                case "response_format" when value.ValueKind == JsonValueKind.Object:
                    request.Format = ReadFormat(value);
                    break;
                case "reasoning_effort" when value.ValueKind == JsonValueKind.String:
                    request.Reasoning = new ReasoningRequest(value.GetString(), null);
                    break;
                case "stream" when value.ValueKind is JsonValueKind.True or JsonValueKind.False:
                    request.Stream = value.GetBoolean();
                    break;
                case "user" when value.ValueKind == JsonValueKind.String:
                    request.User = value.GetString();
                    break;
                case "model" or "stream_options" or "metadata" or "store":
                    break;
                case "logprobs" or "top_logprobs" or "logit_bias" or "audio" or "modalities" or "prediction" or "service_tier" or "web_search_options":
                    if (value.ValueKind is not (JsonValueKind.Null or JsonValueKind.False))
                    {
                        request.Dropped.Add(property.Name);
                    }

                    break;
                default:
                    request.Dropped.Add(property.Name);
                    break;
            }
        }

        return request;
    }

    private static void ReadMessage(ChatRequest request, JsonElement message)
    {
        var role = String(message, "role");
        var content = message.TryGetProperty("content", out var c) ? c : default;
        switch (role)
        {
            case "system" or "developer":
                foreach (var part in ReadParts(content))
                {
                    if (part is TextPart text)
                    {
                        request.System.Add(text);
                    }
                }

                return;
            case "tool" or "function":
                var id = String(message, "tool_call_id") ?? String(message, "name") ?? string.Empty;
                request.Messages.Add(new ChatMessage(ChatRole.Tool, [new ToolResultPart(id, ReadParts(content))]));
                return;
            case "assistant":
                var parts = new List<ContentPart>();
                if (String(message, "reasoning_content") is { Length: > 0 } reasoning)
                {
                    parts.Add(new ReasoningPart(reasoning, null));
                }

                parts.AddRange(ReadParts(content));
                if (String(message, "refusal") is { Length: > 0 } refusal)
                {
                    parts.Add(new TextPart(refusal));
                }

                if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
                {
                    foreach (var call in calls.EnumerateArray())
                    {
                        var function = call.TryGetProperty("function", out var f) ? f : default;
                        parts.Add(new ToolCallPart(String(call, "id") ?? string.Empty,
                            function.ValueKind == JsonValueKind.Object ? String(function, "name") ?? string.Empty : string.Empty,
                            function.ValueKind == JsonValueKind.Object ? String(function, "arguments") ?? "{}" : "{}"));
                    }
                }
                else if (message.TryGetProperty("function_call", out var legacy) && legacy.ValueKind == JsonValueKind.Object)
                {
                    var name = String(legacy, "name") ?? string.Empty;
                    parts.Add(new ToolCallPart(name, name, String(legacy, "arguments") ?? "{}"));
                }

                request.Messages.Add(new ChatMessage(ChatRole.Assistant, parts) { Name = String(message, "name") });
                return;
            default:
                request.Messages.Add(new ChatMessage(ChatRole.User, ReadParts(content)) { Name = String(message, "name") });
                return;
        }
    }

    private static List<ContentPart> ReadParts(JsonElement content)
    {
        var parts = new List<ContentPart>();
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                parts.Add(new TextPart(content.GetString()!));
                break;
            case JsonValueKind.Array:
                foreach (var part in content.EnumerateArray())
                {
                    if (ReadPart(part) is { } read)
                    {
                        parts.Add(read);
                    }
                }

                break;
        }

        return parts;
    }

    private static ContentPart? ReadPart(JsonElement part)
    {
        var cache = ReadCache(part);
        switch (String(part, "type"))
        {
            case "text":
                return new TextPart(String(part, "text") ?? string.Empty) { Cache = cache };
            case "image_url":
                var image = part.TryGetProperty("image_url", out var i) ? i : default;
                var url = image.ValueKind == JsonValueKind.Object ? String(image, "url") : image.ValueKind == JsonValueKind.String ? image.GetString() : null;
                var detail = image.ValueKind == JsonValueKind.Object ? String(image, "detail") : null;
                return DataUrl.TryParse(url, out var mediaType, out var data)
                    ? new ImagePart(null, mediaType, data, detail) { Cache = cache }
                    : new ImagePart(url, null, null, detail) { Cache = cache };
            case "file":
                var file = part.TryGetProperty("file", out var f) ? f : default;
                var fileData = file.ValueKind == JsonValueKind.Object ? String(file, "file_data") : null;
                return DataUrl.TryParse(fileData, out var fileType, out var bytes)
                    ? new DocumentPart(null, fileType, bytes, String(file, "filename")) { Cache = cache }
                    : null;
            default:
                return null;
        }
    }

    private static CacheHint? ReadCache(JsonElement element)
        => element.ValueKind == JsonValueKind.Object && element.TryGetProperty("cache_control", out var cache) && cache.ValueKind == JsonValueKind.Object
            ? new CacheHint(String(cache, "ttl"))
            : null;

    private static ToolChoice? ReadToolChoice(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.String)
        {
            return value.GetString() switch
            {
                "none" => new ToolChoice(ToolChoiceKind.None),
                "required" => new ToolChoice(ToolChoiceKind.Required),
                _ => new ToolChoice(ToolChoiceKind.Auto),
            };
        }

        if (value.ValueKind == JsonValueKind.Object)
        {
            var name = value.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object ? String(function, "name") : String(value, "name");
            return name is null ? null : new ToolChoice(ToolChoiceKind.Tool, name);
        }

        return null;
    }

    private static OutputFormat? ReadFormat(JsonElement value)
    {
        switch (String(value, "type"))
        {
            case "json_schema":
                return OutputFormat.JsonSchema(value.TryGetProperty("json_schema", out var definition) ? definition : default);
            case "json_object":
                return new OutputFormat(ResponseFormatKind.JsonObject);
            default:
                return null;
        }
    }

    private static string? String(JsonElement element, string name) => JsonFields.String(element, name);
}
