using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Responses;

/// <summary>
/// Reads a Responses API request (with the stored history a <c>previous_response_id</c> brought) into
/// the canonical request, for deployments that speak another wire. Consecutive assistant-side items
/// (a message, reasoning, function calls) become one assistant turn; function call outputs become tool
/// results; system and developer messages before the conversation become the system prompt, later ones
/// stay where they are. Built-in tools the gateway cannot run are dropped and named; forcing one is the
/// only refusal.
/// </summary>
internal static class ResponsesRequestReader
{
    /// <summary>Tool types that are the provider's own services: nothing the gateway can translate runs them.</summary>
    public static bool IsBuiltInTool(string type) => type is not ("function");

    public static ChatRequest Read(ReadOnlyMemory<byte> body, ResponsesExchange exchange)
    {
        using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 256 });
        var root = document.RootElement;
        var request = new ChatRequest();
        var reader = new ItemReader(request);

        if (exchange.Previous is { Context.IsEmpty: false } previous)
        {
            using var history = JsonDocument.Parse(previous.Context, new JsonDocumentOptions { MaxDepth = 256 });
            foreach (var item in history.RootElement.EnumerateArray())
            {
                reader.Add(item);
            }
        }

        foreach (var property in root.EnumerateObject())
        {
            var value = property.Value;
            switch (property.Name)
            {
                case "instructions" when value.ValueKind == JsonValueKind.String:
                    // Instructions lead the system prompt, before any system or developer message of the input.
                    request.System.Insert(0, new TextPart(value.GetString()!));
                    break;
                case "input" when value.ValueKind == JsonValueKind.String:
                    reader.Add(ChatRole.User, [new TextPart(value.GetString()!)]);
                    break;
                case "input" when value.ValueKind == JsonValueKind.Array:
                    foreach (var item in value.EnumerateArray())
                    {
                        reader.Add(item);
                    }

                    break;
                case "tools" when value.ValueKind == JsonValueKind.Array:
                    ReadTools(request, value, exchange);
                    break;
                case "tool_choice":
                    request.ToolChoice = ReadToolChoice(value, exchange);
                    break;
                case "parallel_tool_calls" when value.ValueKind is JsonValueKind.True or JsonValueKind.False:
                    request.ParallelToolCalls = value.GetBoolean();
                    break;
                case "max_output_tokens" when value.ValueKind == JsonValueKind.Number:
                    request.MaxTokens = value.GetInt32();
                    break;
                case "temperature" when value.ValueKind == JsonValueKind.Number:
                    request.Temperature = value.GetDouble();
                    break;
                case "top_p" when value.ValueKind == JsonValueKind.Number:
                    request.TopP = value.GetDouble();
                    break;
                case "text" when value.ValueKind == JsonValueKind.Object:
                    ReadText(request, value);
                    break;
                case "reasoning" when value.ValueKind == JsonValueKind.Object:
                    if (String(value, "effort") is { } effort && effort != "none")
                    {
                        request.Reasoning = new ReasoningRequest(effort, null);
                    }

                    break;
                case "stream" when value.ValueKind is JsonValueKind.True or JsonValueKind.False:
                    request.Stream = value.GetBoolean();
                    break;
                case "user" or "safety_identifier" when value.ValueKind == JsonValueKind.String:
                    request.User ??= value.GetString();
                    break;
                case "background" when value.ValueKind == JsonValueKind.True:
                    throw new InvalidOperationException("background mode needs a deployment that runs responses itself (kind openai or azure-openai).");
                case "conversation" or "prompt" when value.ValueKind != JsonValueKind.Null:
                    throw new InvalidOperationException($"'{property.Name}' refers to state kept by OpenAI, which only an openai or azure-openai deployment has.");
                case "model" or "store" or "include" or "metadata" or "previous_response_id" or "stream_options" or "client_metadata" or "background" or "truncation" or "instructions" or "input" or "tool_choice":
                    break;
                default:
                    if (value.ValueKind is not (JsonValueKind.Null or JsonValueKind.False))
                    {
                        // prompt_cache_key, service_tier, top_logprobs, max_tool_calls...: nothing to send them to.
                        request.Dropped.Add(property.Name);
                    }

                    break;
            }
        }

        reader.Flush();
        return request;
    }

    private static void ReadTools(ChatRequest request, JsonElement tools, ResponsesExchange exchange)
    {
        foreach (var tool in tools.EnumerateArray())
        {
            var type = String(tool, "type") ?? string.Empty;
            if (type == "function")
            {
                request.Tools.Add(new ToolDefinition(
                    String(tool, "name") ?? string.Empty,
                    String(tool, "description"),
                    tool.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object ? parameters.Clone() : null,
                    tool.TryGetProperty("strict", out var strict) && strict.ValueKind is JsonValueKind.True or JsonValueKind.False ? strict.GetBoolean() : null));
                continue;
            }

            // web_search, file_search, computer_use, code_interpreter, image_generation, mcp, namespace,
            // custom, local_shell...: the provider runs them (or its grammar decodes them); left out and named.
            var name = type is "namespace" or "custom" or "mcp" && String(tool, type == "mcp" ? "server_label" : "name") is { } label ? $"{type}:{label}" : type;
            exchange.DroppedTools.Add(name);
            request.Dropped.Add("tools." + type);
        }
    }

    private static ToolChoice? ReadToolChoice(JsonElement value, ResponsesExchange exchange)
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

        if (value.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        var type = String(value, "type");
        switch (type)
        {
            case "function":
                return String(value, "name") is { } name ? new ToolChoice(ToolChoiceKind.Tool, name) : null;
            case "allowed_tools":
                return new ToolChoice(String(value, "mode") == "required" ? ToolChoiceKind.Required : ToolChoiceKind.Auto);
            default:
                // Forcing a tool that only the provider itself can run cannot be honoured by dropping it.
                throw new ToolChoiceUnsupportedException(type ?? "unknown");
        }
    }

    private static void ReadText(ChatRequest request, JsonElement text)
    {
        if (!text.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        request.Format = String(format, "type") switch
        {
            "json_schema" => OutputFormat.JsonSchema(format),
            "json_object" => new OutputFormat(ResponseFormatKind.JsonObject),
            _ => null,
        };
    }

    internal static string? String(JsonElement element, string name) => JsonFields.String(element, name);

    /// <summary>Turns input items into canonical turns, joining what belongs to one turn.</summary>
    private sealed class ItemReader(ChatRequest request)
    {
        private List<ContentPart>? _assistant;
        private List<ContentPart>? _results;
        private bool _conversationStarted;

        public void Add(ChatRole role, List<ContentPart> parts)
        {
            Flush();
            if (role == ChatRole.System)
            {
                if (!_conversationStarted)
                {
                    request.System.AddRange(parts.OfType<TextPart>());
                    return;
                }

                request.Messages.Add(new ChatMessage(ChatRole.System, [.. parts.OfType<TextPart>()]));
                return;
            }

            _conversationStarted = true;
            request.Messages.Add(new ChatMessage(role, parts));
        }

        public void Add(JsonElement item)
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                return;
            }

            switch (String(item, "type") ?? "message")
            {
                case "message":
                    var role = String(item, "role");
                    var parts = ReadContent(item.TryGetProperty("content", out var content) ? content : default);
                    if (role == "assistant")
                    {
                        FlushResults();
                        (_assistant ??= []).AddRange(parts);
                        _conversationStarted = true;
                    }
                    else
                    {
                        Add(role is "system" or "developer" ? ChatRole.System : ChatRole.User, parts);
                    }

                    break;
                case "reasoning":
                    FlushResults();
                    var encrypted = String(item, "encrypted_content");
                    if (ResponsesStreamEncoder.TryOpenReasoning(encrypted, out var text, out var signature))
                    {
                        (_assistant ??= []).Add(new ReasoningPart(text, signature));
                    }
                    else if (SummaryText(item) is { Length: > 0 } summary)
                    {
                        // Another provider's encrypted reasoning cannot travel; its summary is kept, unsigned.
                        (_assistant ??= []).Add(new ReasoningPart(summary, null));
                    }

                    break;
                case "function_call":
                    FlushResults();
                    (_assistant ??= []).Add(new ToolCallPart(String(item, "call_id") ?? string.Empty, String(item, "name") ?? string.Empty, String(item, "arguments") ?? "{}"));
                    _conversationStarted = true;
                    break;
                case "function_call_output":
                    FlushAssistant();
                    var output = item.TryGetProperty("output", out var o) ? o : default;
                    var result = output.ValueKind == JsonValueKind.String ? [new TextPart(output.GetString()!)] : ReadContent(output);
                    (_results ??= []).Add(new ToolResultPart(String(item, "call_id") ?? string.Empty, result));
                    break;
                default:
                    // item_reference, web_search_call, local_shell_call...: the record of a provider-run tool, which no other model can read.
                    request.Dropped.Add("input." + String(item, "type"));
                    break;
            }
        }

        public void Flush()
        {
            FlushAssistant();
            FlushResults();
        }

        private void FlushAssistant()
        {
            if (_assistant is { } parts)
            {
                _assistant = null;
                request.Messages.Add(new ChatMessage(ChatRole.Assistant, parts));
            }
        }

        private void FlushResults()
        {
            FlushAssistant();
            if (_results is { } results)
            {
                _results = null;
                request.Messages.Add(new ChatMessage(ChatRole.Tool, results));
            }
        }

        private static string? SummaryText(JsonElement item)
        {
            if (!item.TryGetProperty("summary", out var summary) || summary.ValueKind != JsonValueKind.Array)
            {
                return null;
            }

            return string.Join("\n\n", summary.EnumerateArray().Select(s => String(s, "text")).Where(s => s is not null));
        }

        private List<ContentPart> ReadContent(JsonElement content)
        {
            var parts = new List<ContentPart>();
            if (content.ValueKind == JsonValueKind.String)
            {
                parts.Add(new TextPart(content.GetString()!));
                return parts;
            }

            if (content.ValueKind != JsonValueKind.Array)
            {
                return parts;
            }

            foreach (var part in content.EnumerateArray())
            {
                switch (String(part, "type"))
                {
                    case "input_text" or "output_text" or "summary_text" or "reasoning_text":
                        parts.Add(new TextPart(String(part, "text") ?? string.Empty));
                        break;
                    case "refusal":
                        parts.Add(new TextPart(String(part, "refusal") ?? string.Empty));
                        break;
                    case "input_image":
                        var url = String(part, "image_url");
                        if (url is null)
                        {
                            // An uploaded file id means nothing outside OpenAI.
                            request.Dropped.Add("input_image.file_id");
                            break;
                        }

                        parts.Add(DataUrl.TryParse(url, out var mediaType, out var data)
                            ? new ImagePart(null, mediaType, data, String(part, "detail"))
                            : new ImagePart(url, null, null, String(part, "detail")));
                        break;
                    case "input_file":
                        if (String(part, "file_data") is { } fileData)
                        {
                            // file_data is a data URL, or bare base64 with the type implied by the file name.
                            parts.Add(DataUrl.TryParse(fileData, out var fileType, out var bytes)
                                ? new DocumentPart(null, fileType, bytes, String(part, "filename"))
                                : new DocumentPart(null, "application/pdf", fileData, String(part, "filename")));
                        }
                        else if (String(part, "file_url") is { } fileUrl)
                        {
                            parts.Add(new DocumentPart(fileUrl, null, null, String(part, "filename")));
                        }
                        else
                        {
                            request.Dropped.Add("input_file.file_id");
                        }

                        break;
                    default:
                        request.Dropped.Add("content." + String(part, "type"));
                        break;
                }
            }

            return parts;
        }
    }
}

/// <summary>A <c>tool_choice</c> forces a tool the chosen deployment cannot run: the one refusal of built-in tools.</summary>
internal sealed class ToolChoiceUnsupportedException(string type)
    : InvalidOperationException($"tool_choice forces the built-in tool '{type}', which this model's deployment cannot run: only openai and azure-openai deployments run OpenAI's built-in tools. Offer it without forcing it (it is then left out here), or use a route served by OpenAI.")
{
    public string ToolType { get; } = type;
}
