using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Wire;

namespace ModelGateway.Providers.OpenAI;

/// <summary>
/// The translated half of OpenAI's chat wire: writes a canonical request as a chat completions body,
/// and reads a whole <c>chat.completion</c> into a canonical response. The pass-through path uses
/// neither; it only splices <c>model</c>.
/// </summary>
internal static class OpenAIChatWire
{
    public static byte[] WriteRequest(ChatRequest request, Deployment deployment, bool stream, bool includeUsage)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(buffer, JsonOutput.Options))
        {
            json.WriteStartObject();
            json.WriteString("model"u8, deployment.UpstreamModel);
            json.WriteStartArray("messages"u8);
            if (request.System.Count > 0)
            {
                json.WriteStartObject();
                json.WriteString("role"u8, "system"u8);
                json.WriteString("content"u8, string.Join("\n\n", request.System.Select(s => s.Text)));
                json.WriteEndObject();
            }

            foreach (var message in request.Messages)
            {
                WriteMessage(json, message);
            }

            json.WriteEndArray();
            if (request.Tools.Count > 0)
            {
                json.WriteStartArray("tools"u8);
                foreach (var tool in request.Tools)
                {
                    json.WriteStartObject();
                    json.WriteString("type"u8, "function"u8);
                    json.WriteStartObject("function"u8);
                    json.WriteString("name"u8, tool.Name);
                    if (tool.Description is not null)
                    {
                        json.WriteString("description"u8, tool.Description);
                    }

                    json.WritePropertyName("parameters"u8);
                    if (tool.Parameters is { } schema)
                    {
                        schema.WriteTo(json);
                    }
                    else
                    {
                        json.WriteRawValue("""{"type":"object","properties":{}}"""u8);
                    }

                    if (tool.Strict is { } strict)
                    {
                        json.WriteBoolean("strict"u8, strict);
                    }

                    json.WriteEndObject();
                    json.WriteEndObject();
                }

                json.WriteEndArray();
            }

            if (request.ToolChoice is { } choice)
            {
                switch (choice.Kind)
                {
                    case ToolChoiceKind.Auto: json.WriteString("tool_choice"u8, "auto"u8); break;
                    case ToolChoiceKind.None: json.WriteString("tool_choice"u8, "none"u8); break;
                    case ToolChoiceKind.Required: json.WriteString("tool_choice"u8, "required"u8); break;
                    default:
                        json.WriteStartObject("tool_choice"u8);
                        json.WriteString("type"u8, "function"u8);
                        json.WriteStartObject("function"u8);
                        json.WriteString("name"u8, choice.Name);
                        json.WriteEndObject();
                        json.WriteEndObject();
                        break;
                }
            }

            if (request.ParallelToolCalls is { } parallel && request.Tools.Count > 0)
            {
                json.WriteBoolean("parallel_tool_calls"u8, parallel);
            }

            if (request.MaxTokens is { } maxTokens)
            {
                json.WriteNumber("max_tokens"u8, maxTokens);
            }

            WriteNumber(json, "temperature"u8, request.Temperature);
            WriteNumber(json, "top_p"u8, request.TopP);
            WriteNumber(json, "presence_penalty"u8, request.PresencePenalty);
            WriteNumber(json, "frequency_penalty"u8, request.FrequencyPenalty);
            if (request.Seed is { } seed)
            {
                json.WriteNumber("seed"u8, seed);
            }

            if (request.Stop.Count > 0)
            {
                json.WriteStartArray("stop"u8);
                foreach (var stop in request.Stop)
                {
                    json.WriteStringValue(stop);
                }

                json.WriteEndArray();
            }

            if (request.Format is { } format && format.Kind != ResponseFormatKind.None)
            {
                json.WriteStartObject("response_format"u8);
                switch (format.Kind)
                {
                    case ResponseFormatKind.JsonSchema:
                        json.WriteString("type"u8, "json_schema"u8);
                        json.WriteStartObject("json_schema"u8);
                        json.WriteString("name"u8, format.Name ?? "response");
                        if (format.Schema is { } schema)
                        {
                            json.WritePropertyName("schema"u8);
                            schema.WriteTo(json);
                        }

                        if (format.Strict is { } strict)
                        {
                            json.WriteBoolean("strict"u8, strict);
                        }

                        json.WriteEndObject();
                        break;
                    case ResponseFormatKind.JsonObject:
                        json.WriteString("type"u8, "json_object"u8);
                        break;
                    default:
                        json.WriteString("type"u8, "text"u8);
                        break;
                }

                json.WriteEndObject();
            }

            if (request.Reasoning?.Effort is { } effort)
            {
                json.WriteString("reasoning_effort"u8, effort);
            }

            if (request.User is not null)
            {
                json.WriteString("user"u8, request.User);
            }

            if (stream)
            {
                json.WriteBoolean("stream"u8, true);
                if (includeUsage)
                {
                    json.WriteStartObject("stream_options"u8);
                    json.WriteBoolean("include_usage"u8, true);
                    json.WriteEndObject();
                }
            }

            if (request.Messages.Count > 0 && request.Messages[^1].Role == ChatRole.Assistant)
            {
                // An assistant turn last is a prefill to continue (vLLM's flags; others ignore them).
                json.WriteBoolean("continue_final_message"u8, true);
                json.WriteBoolean("add_generation_prompt"u8, false);
            }

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteNumber(Utf8JsonWriter json, ReadOnlySpan<byte> name, double? value)
    {
        if (value is { } number)
        {
            json.WriteNumber(name, number);
        }
    }

    private static void WriteMessage(Utf8JsonWriter json, ChatMessage message)
    {
        switch (message.Role)
        {
            case ChatRole.Tool:
                // One OpenAI tool message per result.
                foreach (var part in message.Parts)
                {
                    if (part is ToolResultPart result)
                    {
                        json.WriteStartObject();
                        json.WriteString("role"u8, "tool"u8);
                        json.WriteString("tool_call_id"u8, result.ToolCallId);
                        json.WriteString("content"u8, TextOf(result.Content));
                        json.WriteEndObject();
                    }
                }

                return;
            case ChatRole.User when message.Parts.Exists(p => p is ToolResultPart):
                // Anthropic carries tool results in a user turn: OpenAI wants tool messages, then the rest.
                WriteMessage(json, new ChatMessage(ChatRole.Tool, message.Parts.FindAll(p => p is ToolResultPart)));
                var rest = message.Parts.FindAll(p => p is not ToolResultPart);
                if (rest.Count > 0)
                {
                    WriteMessage(json, new ChatMessage(ChatRole.User, rest));
                }

                return;
        }

        json.WriteStartObject();
        json.WriteString("role"u8, message.Role switch
        {
            ChatRole.System => "system",
            ChatRole.Assistant => "assistant",
            _ => "user",
        });
        if (message.Name is not null)
        {
            json.WriteString("name"u8, message.Name);
        }

        var toolCalls = message.Parts.FindAll(p => p is ToolCallPart);
        var content = message.Parts.FindAll(p => p is TextPart or ImagePart or DocumentPart);
        if (content.Count == 0)
        {
            if (toolCalls.Count == 0)
            {
                json.WriteString("content"u8, string.Empty);
            }
            else
            {
                json.WriteNull("content"u8);
            }
        }
        else if (content.TrueForAll(p => p is TextPart) && message.Role != ChatRole.User)
        {
            json.WriteString("content"u8, string.Concat(content.Select(p => ((TextPart)p).Text)));
        }
        else if (content is [TextPart only])
        {
            json.WriteString("content"u8, only.Text);
        }
        else
        {
            json.WriteStartArray("content"u8);
            foreach (var part in content)
            {
                json.WriteStartObject();
                switch (part)
                {
                    case TextPart text:
                        json.WriteString("type"u8, "text"u8);
                        json.WriteString("text"u8, text.Text);
                        break;
                    case ImagePart image:
                        json.WriteString("type"u8, "image_url"u8);
                        json.WriteStartObject("image_url"u8);
                        json.WriteString("url"u8, image.Url ?? $"data:{image.MediaType ?? "image/png"};base64,{image.Base64}");
                        if (image.Detail is not null)
                        {
                            json.WriteString("detail"u8, image.Detail);
                        }

                        json.WriteEndObject();
                        break;
                    case DocumentPart document:
                        json.WriteString("type"u8, "file"u8);
                        json.WriteStartObject("file"u8);
                        if (document.Base64 is not null)
                        {
                            json.WriteString("file_data"u8, $"data:{document.MediaType ?? "application/pdf"};base64,{document.Base64}");
                        }

                        if (document.Title is not null)
                        {
                            json.WriteString("filename"u8, document.Title);
                        }

                        json.WriteEndObject();
                        break;
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        if (toolCalls.Count > 0)
        {
            json.WriteStartArray("tool_calls"u8);
            foreach (ToolCallPart call in toolCalls)
            {
                json.WriteStartObject();
                json.WriteString("id"u8, call.Id);
                json.WriteString("type"u8, "function"u8);
                json.WriteStartObject("function"u8);
                json.WriteString("name"u8, call.Name);
                json.WriteString("arguments"u8, call.ArgumentsJson);
                json.WriteEndObject();
                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();
    }

    /// <summary>Text of tool-result content; images in a result have no place in an OpenAI tool message.</summary>
    public static string TextOf(IReadOnlyList<ContentPart> parts)
        => parts is [TextPart single] ? single.Text : string.Join("\n", parts.OfType<TextPart>().Select(p => p.Text));

    /// <summary>Reads a whole <c>chat.completion</c> (first choice) into a canonical response.</summary>
    public static ChatResponse ReadResponse(ReadOnlySpan<byte> body, Deployment deployment, out UpstreamError? error)
    {
        error = null;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 128 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InvalidDataException("The body is not a JSON object.");
        }

        string? id = null;
        string? model = null;
        string? text = null;
        string? reasoning = null;
        var calls = new List<ToolCallResult>();
        var finish = FinishReason.None;
        var usage = default(TokenUsage);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                id = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                reader.Read();
                model = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Null)
                {
                    error = OpenAIErrors.InBand(body, deployment);
                    return new ChatResponse();
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    usage = OpenAIChunkDecoder.ReadUsage(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    reader.Skip();
                    continue;
                }

                var first = true;
                while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                {
                    if (!first)
                    {
                        reader.Skip();
                        continue;
                    }

                    first = false;
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("finish_reason"u8))
                        {
                            reader.Read();
                            if (reader.TokenType == JsonTokenType.String)
                            {
                                finish = OpenAIChunkDecoder.ParseFinish(ref reader);
                            }
                        }
                        else if (reader.ValueTextEquals("message"u8))
                        {
                            reader.Read();
                            using var message = JsonDocument.ParseValue(ref reader);
                            var root = message.RootElement;
                            text = String(root, "content") ?? String(root, "refusal");
                            reasoning = String(root, "reasoning_content") ?? String(root, "reasoning");
                            if (root.TryGetProperty("tool_calls", out var toolCalls) && toolCalls.ValueKind == JsonValueKind.Array)
                            {
                                foreach (var call in toolCalls.EnumerateArray())
                                {
                                    var function = call.TryGetProperty("function", out var f) ? f : default;
                                    calls.Add(new ToolCallResult(
                                        String(call, "id") ?? $"call_{calls.Count}",
                                        function.ValueKind == JsonValueKind.Object ? String(function, "name") ?? string.Empty : string.Empty,
                                        function.ValueKind == JsonValueKind.Object ? String(function, "arguments") ?? "{}" : "{}"));
                                }
                            }
                        }
                        else
                        {
                            reader.Read();
                            reader.Skip();
                        }
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return new ChatResponse { Id = id, Model = model, Text = text ?? string.Empty, Reasoning = reasoning, ToolCalls = calls, Finish = finish, Usage = usage };
    }

    private static string? String(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
