using System.Text;
using System.Text.Json;

using ModelGateway.Wire;

namespace ModelGateway.Protocols.OpenAI;

/// <summary>Reads and validates an OpenAI request body without building a DOM.</summary>
internal static partial class RequestParser
{
    public const int MaxModelNameLength = RequestModel.MaxLength;

    public static bool TryParse(ReadOnlySpan<byte> body, Operation operation, int maxDepth, out RequestInfo info, out RequestProblem problem)
    {
        info = default;
        info.N = 1;
        problem = default;
        if (!IsValidUtf8(body, out problem))
        {
            return false;
        }

        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = maxDepth, CommentHandling = JsonCommentHandling.Disallow });
        var sawMessages = false;
        var sawInput = false;
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
                        info.ModelLength = 0;
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError("model", "a string", ref reader, out problem);
                    }

                    info.ModelStart = (int)reader.TokenStartIndex;
                    info.ModelLength = reader.ValueSpan.Length + 2;
                    if (reader.ValueSpan.Length > MaxModelNameLength)
                    {
                        problem = new($"'model' is longer than {MaxModelNameLength} characters.", "model");
                        return false;
                    }

                    if (reader.ValueIsEscaped)
                    {
                        // Routing and error messages unescape the name later: find a bad escape now, as a 400.
                        CheckUnescapes(in reader);
                    }
                }
                else if (reader.ValueTextEquals("messages"u8))
                {
                    reader.Read();
                    if (operation != Operation.ChatCompletions)
                    {
                        reader.Skip();
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return TypeError("messages", "an array of message objects", ref reader, out problem);
                    }

                    if (!ReadMessages(ref reader, ref info, out problem))
                    {
                        return false;
                    }

                    sawMessages = true;
                }
                else if (reader.ValueTextEquals("prompt"u8) && operation == Operation.Completions)
                {
                    reader.Read();
                    if (!ReadTextOrTokens(ref reader, ref info, "prompt", out problem))
                    {
                        return false;
                    }

                    sawInput = true;
                }
                else if (reader.ValueTextEquals("input"u8) && operation == Operation.Embeddings)
                {
                    reader.Read();
                    if (!ReadTextOrTokens(ref reader, ref info, "input", out problem))
                    {
                        return false;
                    }

                    sawInput = true;
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    reader.Read();
                    if (reader.TokenType is JsonTokenType.True or JsonTokenType.False)
                    {
                        info.Stream = reader.TokenType == JsonTokenType.True;
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        return TypeError("stream", "a boolean", ref reader, out problem);
                    }
                }
                else if (reader.ValueTextEquals("stream_options"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        return TypeError("stream_options", "an object", ref reader, out problem);
                    }

                    if (!ReadStreamOptions(ref reader, ref info, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("max_tokens"u8) || reader.ValueTextEquals("max_completion_tokens"u8))
                {
                    var name = reader.ValueTextEquals("max_tokens"u8) ? "max_tokens" : "max_completion_tokens";
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var maxTokens))
                    {
                        return TypeError(name, "an integer", ref reader, out problem);
                    }

                    if (maxTokens < 1)
                    {
                        problem = new($"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {maxTokens} instead.", name, "integer_below_min_value");
                        return false;
                    }

                    info.MaxTokens = info.MaxTokens is { } existing ? Math.Min(existing, maxTokens) : maxTokens;
                }
                else if (reader.ValueTextEquals("n"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var n))
                    {
                        return TypeError("n", "an integer", ref reader, out problem);
                    }

                    if (n is < 1 or > 128)
                    {
                        problem = new($"Invalid 'n': expected a value between 1 and 128, but got {n} instead.", "n", "invalid_value");
                        return false;
                    }

                    info.N = n;
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
                else if (reader.ValueTextEquals("presence_penalty"u8))
                {
                    if (!ReadBoundedNumber(ref reader, "presence_penalty", -2, 2, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("frequency_penalty"u8))
                {
                    if (!ReadBoundedNumber(ref reader, "frequency_penalty", -2, 2, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("tools"u8) || reader.ValueTextEquals("functions"u8))
                {
                    var isTools = reader.ValueTextEquals("tools"u8);
                    var name = isTools ? "tools" : "functions";
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return TypeError(name, "an array", ref reader, out problem);
                    }

                    // Tool definitions are sent to the model as text, so they count towards the input.
                    var start = reader.TokenStartIndex;
                    var any = false;
                    if (isTools)
                    {
                        if (!ReadTools(ref reader, out any, out problem))
                        {
                            return false;
                        }
                    }
                    else
                    {
                        reader.Skip();
                        any = reader.BytesConsumed - start > 2;
                    }

                    info.TextBytes += reader.BytesConsumed - start;
                    info.HasTools |= any;
                }
                else if (reader.ValueTextEquals("tool_choice"u8))
                {
                    if (!ReadToolChoice(ref reader, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("stop"u8))
                {
                    if (!ReadStop(ref reader, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("logit_bias"u8))
                {
                    if (!ReadLogitBias(ref reader, out problem))
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
                else if (reader.ValueTextEquals("encoding_format"u8) && operation == Operation.Embeddings)
                {
                    if (!ReadEncodingFormat(ref reader, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("response_format"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        return TypeError("response_format", "an object", ref reader, out problem);
                    }

                    if (!ReadResponseFormat(ref reader, ref info, out problem))
                    {
                        return false;
                    }
                }
                else
                {
                    // Unknown and pass-through fields (tool_choice, seed, user, metadata, new OpenAI parameters).
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
        catch (InvalidEscapeException)
        {
            // A string whose \u escapes are a lone surrogate: well-formed JSON, but not text.
            problem = OpenAIBodyProblems.LoneSurrogate;
            return false;
        }

        if (info.ModelLength == 0)
        {
            problem = new("You must provide a model parameter.", "model", "missing_required_parameter");
            return false;
        }

        if (operation == Operation.ChatCompletions && !sawMessages)
        {
            problem = new("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
            return false;
        }

        if (operation == Operation.ChatCompletions && info.MessageCount == 0)
        {
            problem = new("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages", "empty_array");
            return false;
        }

        if (operation != Operation.ChatCompletions && !sawInput)
        {
            var name = operation == Operation.Embeddings ? "input" : "prompt";
            problem = new($"Missing required parameter: '{name}'.", name, "missing_required_parameter");
            return false;
        }

        if (operation == Operation.Embeddings && info.Stream)
        {
            problem = new("Embeddings cannot be streamed.", "stream", "invalid_value");
            return false;
        }

        if (info.StreamOptionsPresent && !info.Stream)
        {
            problem = new("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", "invalid_value");
            return false;
        }

        return true;
    }

    private static bool ReadMessages(ref Utf8JsonReader reader, ref RequestInfo info, out RequestProblem problem)
    {
        problem = default;
        var index = 0;
        var answeringToolCalls = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError($"messages[{index}]", "an object", ref reader, out problem);
            }

            var message = default(MessageFacts);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("role"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"messages[{index}].role", "a string", ref reader, out problem);
                    }

                    if (!ReadRole(ref reader, index, out message.Role, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("content"u8))
                {
                    reader.Read();
                    switch (reader.TokenType)
                    {
                        case JsonTokenType.String:
                            info.TextBytes += reader.ValueSpan.Length;
                            message.Content = ContentState.Present;
                            break;
                        case JsonTokenType.StartArray:
                            if (!ReadContentParts(ref reader, ref info, index, ref message, out problem))
                            {
                                return false;
                            }

                            break;
                        case JsonTokenType.Null:
                            message.Content = ContentState.Null;
                            break;
                        default:
                            return TypeError($"messages[{index}].content", "a string or an array of content parts", ref reader, out problem);
                    }
                }
                else if (reader.ValueTextEquals("name"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.TextBytes += reader.ValueSpan.Length;
                        if (!CheckMessageName(ref reader, index, out problem))
                        {
                            return false;
                        }
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else
                {
                    // tool_calls, tool_call_id, refusal, audio...: count their raw size as text.
                    var isToolCallId = reader.ValueTextEquals("tool_call_id"u8);
                    var isToolCalls = reader.ValueTextEquals("tool_calls"u8);
                    reader.Read();
                    message.HasToolCallId |= isToolCallId && reader.TokenType == JsonTokenType.String;
                    message.HasToolCalls |= isToolCalls && IsNonEmptyArray(reader);
                    var start = reader.TokenStartIndex;
                    reader.Skip();
                    info.TextBytes += reader.BytesConsumed - start;
                }
            }

            if (message.Role == MessageRole.None)
            {
                problem = new($"Missing required parameter: 'messages[{index}].role'.", $"messages[{index}].role", "missing_required_parameter");
                return false;
            }

            if (!CheckMessage(in message, index, ref answeringToolCalls, out problem))
            {
                return false;
            }

            index++;
        }

        info.MessageCount = index;
        info.MessagesEnd = (int)reader.TokenStartIndex;
        return true;
    }

    private static bool ReadContentParts(ref Utf8JsonReader reader, ref RequestInfo info, int messageIndex, ref MessageFacts message, out RequestProblem problem)
    {
        problem = default;
        var part = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError($"messages[{messageIndex}].content[{part}]", "an object", ref reader, out problem);
            }

            var type = PartType.None;
            var hasText = false;
            var hasImage = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (!ReadPartType(ref reader, messageIndex, part, out type, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("text"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.TextBytes += reader.ValueSpan.Length;
                        hasText = true;
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("image_url"u8))
                {
                    info.ImageCount++;
                    message.Images++;
                    hasImage = true;
                    reader.Read();
                    if (IsRemoteImage(ref reader))
                    {
                        info.MediaUrlCount++;
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (!CheckPart(type, hasText, hasImage, messageIndex, part, out problem))
            {
                return false;
            }

            part++;
        }

        message.Content = part == 0 ? ContentState.EmptyArray : ContentState.Present;
        return true;
    }

    /// <summary>
    /// Reads an <c>image_url</c> value (the reader is on it; leaves it on its end): whether it names the
    /// image by a URL to fetch rather than inline as a data: URL. Routing prefers deployments that take
    /// such URLs, since others would need the gateway to fetch them.
    /// </summary>
    private static bool IsRemoteImage(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return !IsDataUrl(in reader);
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return false;
        }

        var remote = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isUrl = reader.ValueTextEquals("url"u8);
            reader.Read();
            if (isUrl && reader.TokenType == JsonTokenType.String)
            {
                remote = !IsDataUrl(in reader);
            }
            else
            {
                reader.Skip();
            }
        }

        return remote;
    }

    private static bool IsDataUrl(in Utf8JsonReader reader)
    {
        if (!reader.ValueIsEscaped)
        {
            var raw = reader.ValueSpan;
            return raw.Length >= 5 && Ascii.EqualsIgnoreCase(raw[..5], "data:"u8);
        }

        // Escaped text is rare in a URL; a bad escape becomes the parser's usual 400.
        Span<char> buffer = stackalloc char[64];
        return Unescaped(in reader, buffer, out _).StartsWith("data:", StringComparison.OrdinalIgnoreCase);
    }

    private static bool ReadTextOrTokens(ref Utf8JsonReader reader, ref RequestInfo info, string name, out RequestProblem problem)
    {
        problem = default;
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                info.TextBytes += reader.ValueSpan.Length;
                info.InputCount = 1;
                return true;
            case JsonTokenType.StartArray:
                break;
            default:
                return TypeError(name, "a string or an array", ref reader, out problem);
        }

        var count = 0;
        var sawNumbers = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.String:
                    info.TextBytes += reader.ValueSpan.Length;
                    count++;
                    break;
                case JsonTokenType.Number:
                    info.TokenIds++;
                    sawNumbers = true;
                    break;
                case JsonTokenType.StartArray:
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (reader.TokenType != JsonTokenType.Number)
                        {
                            return TypeError($"{name}[{count}]", "an array of token ids", ref reader, out problem);
                        }

                        info.TokenIds++;
                    }

                    count++;
                    break;
                default:
                    return TypeError($"{name}[{count}]", "a string or an array of token ids", ref reader, out problem);
            }
        }

        info.InputCount = sawNumbers ? count + 1 : count;
        if (info.InputCount == 0)
        {
            problem = new($"Invalid '{name}': empty array. Expected an array with minimum length 1.", name, "empty_array");
            return false;
        }

        if (info.InputCount > 2048)
        {
            problem = new($"Invalid '{name}': array too long. Expected an array with maximum length 2048, but got {info.InputCount} instead.", name, "array_above_max_length");
            return false;
        }

        return true;
    }

    private static bool ReadStreamOptions(ref Utf8JsonReader reader, ref RequestInfo info, out RequestProblem problem)
    {
        problem = default;
        info.StreamOptionsPresent = true;
        info.StreamOptionsStart = (int)reader.TokenStartIndex;
        info.StreamOptionsEmpty = true;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            info.StreamOptionsEmpty = false;
            if (reader.ValueTextEquals("include_usage"u8))
            {
                reader.Read();
                if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False))
                {
                    return TypeError("stream_options.include_usage", "a boolean", ref reader, out problem);
                }

                info.IncludeUsage = reader.TokenType == JsonTokenType.True;
                info.IncludeUsageStart = (int)reader.TokenStartIndex;
                info.IncludeUsageLength = info.IncludeUsage.Value ? 4 : 5;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return true;
    }

    private static bool ReadResponseFormat(ref Utf8JsonReader reader, ref RequestInfo info, out RequestProblem problem)
    {
        problem = default;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.String)
                {
                    return TypeError("response_format.type", "a string", ref reader, out problem);
                }

                info.ResponseFormat = reader.ValueTextEquals("json_schema"u8) ? ResponseFormatKind.JsonSchema
                    : reader.ValueTextEquals("json_object"u8) ? ResponseFormatKind.JsonObject
                    : reader.ValueTextEquals("text"u8) ? ResponseFormatKind.Text
                    : ResponseFormatKind.None;
                if (info.ResponseFormat == ResponseFormatKind.None)
                {
                    problem = new("Invalid 'response_format.type': expected one of 'text', 'json_object', 'json_schema'.", "response_format.type", "invalid_value");
                    return false;
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
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
}
