using System.Text.Json;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Responses;

/// <summary>
/// Reads and validates a Responses API body (<c>POST /v1/responses</c>) in one
/// <see cref="Utf8JsonReader"/> pass, the way OpenAI validates it, into the neutral facts routing and
/// limits need. Lenient where agents are: item and tool types it does not know are accepted (they pass
/// through to OpenAI, or are dropped by the translation), so no client gets a 400 for a newer field.
/// </summary>
internal static class ResponsesRequestParser
{
    /// <summary>OpenAI's floor for <c>max_output_tokens</c>.</summary>
    public const int MinOutputTokens = 16;

    public static bool TryParse(ReadOnlySpan<byte> body, int maxDepth, out RequestInfo info, out RequestProblem problem)
    {
        info = default;
        info.N = 1;
        if (!RequestParser.IsValidUtf8(body, out problem))
        {
            return false;
        }

        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = maxDepth, CommentHandling = JsonCommentHandling.Disallow });
        var sawInput = false;
        var sawContinuation = false;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                problem = new("The request body must be a JSON object.", null);
                return false;
            }

            info.BodyStart = (int)reader.TokenStartIndex;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError("model", "a string", ref reader, out problem);
                    }

                    info.ModelStart = (int)reader.TokenStartIndex;
                    info.ModelLength = reader.ValueSpan.Length + 2;
                    if (reader.ValueSpan.Length > RequestModel.MaxLength)
                    {
                        problem = new($"'model' is longer than {RequestModel.MaxLength} characters.", "model");
                        return false;
                    }

                    if (reader.ValueIsEscaped)
                    {
                        _ = reader.GetString();
                    }
                }
                else if (reader.ValueTextEquals("input"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.TextBytes += reader.ValueSpan.Length;
                        info.MessageCount = 1;
                        sawInput = true;
                    }
                    else if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        if (!ReadItems(ref reader, ref info, out problem))
                        {
                            return false;
                        }

                        sawInput = true;
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        return TypeError("input", "a string or an array of input items", ref reader, out problem);
                    }
                }
                else if (reader.ValueTextEquals("instructions"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.TextBytes += reader.ValueSpan.Length;
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        return TypeError("instructions", "a string", ref reader, out problem);
                    }
                }
                else if (reader.ValueTextEquals("stream"u8) || reader.ValueTextEquals("store"u8) || reader.ValueTextEquals("background"u8) || reader.ValueTextEquals("parallel_tool_calls"u8))
                {
                    var name = reader.GetString()!;
                    reader.Read();
                    if (reader.TokenType is JsonTokenType.True or JsonTokenType.False)
                    {
                        if (name == "stream")
                        {
                            info.Stream = reader.TokenType == JsonTokenType.True;
                        }
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        return TypeError(name, "a boolean", ref reader, out problem);
                    }
                }
                else if (reader.ValueTextEquals("max_output_tokens"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var maxTokens))
                    {
                        return TypeError("max_output_tokens", "an integer", ref reader, out problem);
                    }

                    if (maxTokens < MinOutputTokens)
                    {
                        problem = new($"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MinOutputTokens}, but got {maxTokens} instead.", "max_output_tokens", "integer_below_min_value");
                        return false;
                    }

                    info.MaxTokens = maxTokens;
                }
                else if (reader.ValueTextEquals("temperature"u8))
                {
                    if (!ReadBoundedNumber(ref reader, "temperature", 0, 2, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("top_p"u8))
                {
                    if (!ReadBoundedNumber(ref reader, "top_p", 0, 1, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("top_logprobs"u8))
                {
                    if (!ReadBoundedNumber(ref reader, "top_logprobs", 0, 20, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("tools"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return TypeError("tools", "an array", ref reader, out problem);
                    }

                    var start = reader.TokenStartIndex;
                    if (!ReadTools(ref reader, ref info, out problem))
                    {
                        return false;
                    }

                    // Tool definitions reach the model as text, so they count towards the input.
                    info.TextBytes += reader.BytesConsumed - start;
                }
                else if (reader.ValueTextEquals("tool_choice"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        if (!(reader.ValueTextEquals("none"u8) || reader.ValueTextEquals("auto"u8) || reader.ValueTextEquals("required"u8)))
                        {
                            return InvalidValue(ref reader, "tool_choice", "'none', 'auto', and 'required'", out problem);
                        }
                    }
                    else if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        if (!ReadTypedObject(ref reader, "tool_choice", out problem))
                        {
                            return false;
                        }
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        return TypeError("tool_choice", "a string or an object", ref reader, out problem);
                    }
                }
                else if (reader.ValueTextEquals("text"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        return TypeError("text", "an object", ref reader, out problem);
                    }

                    if (!ReadText(ref reader, ref info, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("reasoning"u8) || reader.ValueTextEquals("metadata"u8))
                {
                    var name = reader.GetString()!;
                    reader.Read();
                    if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.Null))
                    {
                        return TypeError(name, "an object", ref reader, out problem);
                    }

                    reader.Skip();
                }
                else if (reader.ValueTextEquals("previous_response_id"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        sawContinuation = true;
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        return TypeError("previous_response_id", "a string", ref reader, out problem);
                    }
                }
                else if (reader.ValueTextEquals("include"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return TypeError("include", "an array of strings", ref reader, out problem);
                    }

                    var index = 0;
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (reader.TokenType != JsonTokenType.String)
                        {
                            return TypeError($"include[{index}]", "a string", ref reader, out problem);
                        }

                        index++;
                    }
                }
                else if (reader.ValueTextEquals("truncation"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String && !(reader.ValueTextEquals("auto"u8) || reader.ValueTextEquals("disabled"u8)))
                    {
                        return InvalidValue(ref reader, "truncation", "'auto' and 'disabled'", out problem);
                    }

                    reader.Skip();
                }
                else if (reader.ValueTextEquals("prompt"u8) || reader.ValueTextEquals("conversation"u8))
                {
                    // A stored prompt or a server-side conversation stands in for the input.
                    reader.Read();
                    sawContinuation |= reader.TokenType != JsonTokenType.Null;
                    reader.Skip();
                }
                else
                {
                    // prompt_cache_key, service_tier, user, safety_identifier, client_metadata, and what OpenAI adds next.
                    reader.Read();
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                problem = OpenAIBodyProblems.NotSingleObject;
                return false;
            }
        }
        catch (JsonException ex)
        {
            problem = OpenAIBodyProblems.Unparsable(ex, maxDepth);
            return false;
        }
        catch (InvalidOperationException)
        {
            problem = OpenAIBodyProblems.LoneSurrogate;
            return false;
        }

        if (info.ModelLength == 0)
        {
            problem = new("Missing required parameter: 'model'.", "model", "missing_required_parameter");
            return false;
        }

        if (!sawInput && !sawContinuation)
        {
            problem = new("Missing required parameter: 'input'.", "input", "missing_required_parameter");
            return false;
        }

        return true;
    }

    // Input items: messages (with or without "type": "message"), function calls and their outputs,
    // reasoning, and the other item types, which are counted and left for the wire to judge.
    private static bool ReadItems(ref Utf8JsonReader reader, ref RequestInfo info, out RequestProblem problem)
    {
        problem = default;
        var index = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError($"input[{index}]", "an object", ref reader, out problem);
            }

            var type = ItemType.Message;
            var hasRole = false;
            var hasCallId = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"input[{index}].type", "a string", ref reader, out problem);
                    }

                    type = reader.ValueTextEquals("message"u8) ? ItemType.Message
                        : reader.ValueTextEquals("function_call"u8) ? ItemType.FunctionCall
                        : reader.ValueTextEquals("function_call_output"u8) ? ItemType.FunctionCallOutput
                        : ItemType.Other;
                }
                else if (reader.ValueTextEquals("role"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"input[{index}].role", "a string", ref reader, out problem);
                    }

                    if (!(reader.ValueTextEquals("user"u8) || reader.ValueTextEquals("assistant"u8) || reader.ValueTextEquals("system"u8) || reader.ValueTextEquals("developer"u8)))
                    {
                        return InvalidValue(ref reader, $"input[{index}].role", "'assistant', 'system', 'developer', and 'user'", out problem);
                    }

                    hasRole = true;
                }
                else if (reader.ValueTextEquals("content"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.TextBytes += reader.ValueSpan.Length;
                    }
                    else if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        if (!ReadContent(ref reader, ref info, index, out problem))
                        {
                            return false;
                        }
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("call_id"u8))
                {
                    reader.Read();
                    hasCallId = reader.TokenType == JsonTokenType.String;
                    reader.Skip();
                }
                else
                {
                    // arguments, output, summary, encrypted_content...: their size counts as text.
                    reader.Read();
                    var start = reader.TokenStartIndex;
                    reader.Skip();
                    info.TextBytes += reader.BytesConsumed - start;
                }
            }

            if (type == ItemType.Message && !hasRole)
            {
                problem = new($"Missing required parameter: 'input[{index}].role'.", $"input[{index}].role", "missing_required_parameter");
                return false;
            }

            if (type is ItemType.FunctionCall or ItemType.FunctionCallOutput && !hasCallId)
            {
                problem = new($"Missing required parameter: 'input[{index}].call_id'.", $"input[{index}].call_id", "missing_required_parameter");
                return false;
            }

            index++;
        }

        info.MessageCount = index;
        return true;
    }

    private static bool ReadContent(ref Utf8JsonReader reader, ref RequestInfo info, int item, out RequestProblem problem)
    {
        problem = default;
        var part = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError($"input[{item}].content[{part}]", "an object", ref reader, out problem);
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"input[{item}].content[{part}].type", "a string", ref reader, out problem);
                    }

                    if (reader.ValueTextEquals("input_image"u8))
                    {
                        info.ImageCount++;
                    }
                    else if (!(reader.ValueTextEquals("input_text"u8) || reader.ValueTextEquals("output_text"u8) || reader.ValueTextEquals("refusal"u8)
                        || reader.ValueTextEquals("input_file"u8) || reader.ValueTextEquals("input_audio"u8) || reader.ValueTextEquals("computer_screenshot"u8)
                        || reader.ValueTextEquals("summary_text"u8) || reader.ValueTextEquals("reasoning_text"u8)))
                    {
                        return InvalidValue(ref reader, $"input[{item}].content[{part}].type",
                            "'input_text', 'input_image', 'output_text', 'refusal', 'input_file', 'computer_screenshot', and 'summary_text'", out problem);
                    }
                }
                else if (reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("refusal"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.TextBytes += reader.ValueSpan.Length;
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else
                {
                    // Image URLs and file data cost per image (or are counted by the provider), not per byte.
                    reader.Read();
                    reader.Skip();
                }
            }

            part++;
        }

        return true;
    }

    private static bool ReadTools(ref Utf8JsonReader reader, ref RequestInfo info, out RequestProblem problem)
    {
        problem = default;
        var index = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError($"tools[{index}]", "an object", ref reader, out problem);
            }

            var isFunction = false;
            var hasType = false;
            var hasName = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"tools[{index}].type", "a string", ref reader, out problem);
                    }

                    hasType = true;
                    isFunction = reader.ValueTextEquals("function"u8) || reader.ValueTextEquals("custom"u8);
                }
                else if (reader.ValueTextEquals("name"u8))
                {
                    reader.Read();
                    hasName = reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0;
                    reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (!hasType)
            {
                problem = new($"Missing required parameter: 'tools[{index}].type'.", $"tools[{index}].type", "missing_required_parameter");
                return false;
            }

            if (isFunction && !hasName)
            {
                problem = new($"Missing required parameter: 'tools[{index}].name'.", $"tools[{index}].name", "missing_required_parameter");
                return false;
            }

            info.HasTools |= isFunction;
            index++;
        }

        return true;
    }

    private static bool ReadText(ref Utf8JsonReader reader, ref RequestInfo info, out RequestProblem problem)
    {
        problem = default;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!reader.ValueTextEquals("format"u8))
            {
                reader.Read();
                reader.Skip();
                continue;
            }

            reader.Read();
            if (reader.TokenType == JsonTokenType.Null)
            {
                continue;
            }

            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError("text.format", "an object", ref reader, out problem);
            }

            var hasName = false;
            var hasSchema = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError("text.format.type", "a string", ref reader, out problem);
                    }

                    info.ResponseFormat = reader.ValueTextEquals("json_schema"u8) ? ResponseFormatKind.JsonSchema
                        : reader.ValueTextEquals("json_object"u8) ? ResponseFormatKind.JsonObject
                        : reader.ValueTextEquals("text"u8) ? ResponseFormatKind.Text
                        : ResponseFormatKind.None;
                    if (info.ResponseFormat == ResponseFormatKind.None)
                    {
                        return InvalidValue(ref reader, "text.format.type", "'text', 'json_schema', and 'json_object'", out problem);
                    }
                }
                else
                {
                    hasName |= reader.ValueTextEquals("name"u8);
                    hasSchema |= reader.ValueTextEquals("schema"u8);
                    reader.Read();
                    reader.Skip();
                }
            }

            if (info.ResponseFormat == ResponseFormatKind.JsonSchema && (!hasName || !hasSchema))
            {
                var missing = hasName ? "text.format.schema" : "text.format.name";
                problem = new($"Missing required parameter: '{missing}'.", missing, "missing_required_parameter");
                return false;
            }
        }

        return true;
    }

    private static bool ReadTypedObject(ref Utf8JsonReader reader, string param, out RequestProblem problem)
    {
        problem = default;
        var hasType = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            hasType |= reader.ValueTextEquals("type"u8);
            reader.Read();
            reader.Skip();
        }

        if (!hasType)
        {
            problem = new($"Missing required parameter: '{param}.type'.", param + ".type", "missing_required_parameter");
            return false;
        }

        return true;
    }

    private static bool ReadBoundedNumber(ref Utf8JsonReader reader, string name, double min, double max, out RequestProblem problem)
    {
        problem = default;
        reader.Read();
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDouble(out var value))
        {
            return TypeError(name, "a number", ref reader, out problem);
        }

        if (value < min || value > max || double.IsNaN(value))
        {
            problem = new($"Invalid '{name}': expected a value between {min} and {max}, but got {value} instead.", name, "invalid_value");
            return false;
        }

        return true;
    }

    private static bool InvalidValue(ref Utf8JsonReader reader, string param, string supported, out RequestProblem problem)
    {
        var value = reader.GetString() ?? string.Empty;
        problem = new($"Invalid value: '{(value.Length <= 64 ? value : value[..64] + "…")}'. Supported values are: {supported}.", param, "invalid_value");
        return false;
    }

    private static bool TypeError(string param, string expected, ref Utf8JsonReader reader, out RequestProblem problem)
    {
        var actual = reader.TokenType switch
        {
            JsonTokenType.String => "a string",
            JsonTokenType.Number => "a number",
            JsonTokenType.True or JsonTokenType.False => "a boolean",
            JsonTokenType.StartArray => "an array",
            JsonTokenType.StartObject => "an object",
            JsonTokenType.Null => "null",
            _ => "something else",
        };
        problem = new($"Invalid type for '{param}': expected {expected}, but got {actual} instead.", param, "invalid_type");
        return false;
    }

    private enum ItemType : byte
    {
        Message,
        FunctionCall,
        FunctionCallOutput,
        Other,
    }
}
