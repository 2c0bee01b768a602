using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

using ModelGateway.Wire;

namespace ModelGateway.Protocols.OpenAI;

// The checks OpenAI makes that a client really meets (a misspelt role, a tool message cut loose from
// its call by history truncation, an Anthropic-style tool_choice, five stop sequences...), made on the
// same one-pass reader so a request OpenAI would refuse never costs an upstream call. Messages use
// OpenAI's own wording where it is known, so clients that match on it keep working.
internal static partial class RequestParser
{
    private const string RoleValues = "'system', 'assistant', 'user', 'function', 'tool', and 'developer'";
    private const string PartTypeValues = "'text', 'image_url', 'input_audio', 'file', and 'refusal'";
    private const int MaxTools = 128;
    private const int MaxStopSequences = 4;
    private const int MaxFunctionNameLength = 64;

    private enum MessageRole : byte
    {
        None,
        System,
        Developer,
        User,
        Assistant,
        Tool,
        Function,
    }

    private enum ContentState : byte
    {
        Missing,
        Null,
        EmptyArray,
        Present,
    }

    private enum PartType : byte
    {
        None,
        Text,
        ImageUrl,
        Other,
    }

    /// <summary>What one message said about itself; checked once the whole object is read, since fields come in any order.</summary>
    private struct MessageFacts
    {
        public MessageRole Role;
        public ContentState Content;
        public int Images;
        public bool HasToolCallId;
        public bool HasToolCalls;
    }

    /// <summary>
    /// JSON is UTF-8 by definition, and the reader does not check the bytes inside strings: without
    /// this, a body with <c>C3 28</c>, an overlong <c>C0 AF</c>, a UTF-8-encoded surrogate or a cut
    /// sequence would go upstream. One vectorised pass over the buffered body, no copy.
    /// </summary>
    internal static bool IsValidUtf8(ReadOnlySpan<byte> body, out RequestProblem problem)
    {
        if (Utf8.IsValid(body))
        {
            problem = default;
            return true;
        }

        problem = new(
            $"We could not parse the JSON body of your request: it is not valid UTF-8 (invalid byte sequence at byte {FirstInvalidUtf8(body)}). The API expects a JSON payload encoded as UTF-8.",
            null,
            "invalid_utf8");
        return false;
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> body)
    {
        var offset = 0;
        while (offset < body.Length)
        {
            if (Rune.DecodeFromUtf8(body[offset..], out _, out var consumed) != OperationStatus.Done)
            {
                return offset;
            }

            offset += consumed;
        }

        return offset;
    }

    private static bool ReadRole(ref Utf8JsonReader reader, int index, out MessageRole role, out RequestProblem problem)
    {
        problem = default;
        role = reader.ValueTextEquals("user"u8) ? MessageRole.User
            : reader.ValueTextEquals("assistant"u8) ? MessageRole.Assistant
            : reader.ValueTextEquals("system"u8) ? MessageRole.System
            : reader.ValueTextEquals("tool"u8) ? MessageRole.Tool
            : reader.ValueTextEquals("developer"u8) ? MessageRole.Developer
            : reader.ValueTextEquals("function"u8) ? MessageRole.Function
            : MessageRole.None;
        return role != MessageRole.None || InvalidValue(ref reader, $"messages[{index}].role", RoleValues, out problem);
    }

    private static bool CheckMessage(in MessageFacts message, int index, ref bool answeringToolCalls, out RequestProblem problem)
    {
        problem = default;
        var prefix = $"messages[{index}]";
        if (message.Role is MessageRole.System or MessageRole.Developer or MessageRole.User or MessageRole.Tool)
        {
            switch (message.Content)
            {
                case ContentState.Missing:
                    problem = Missing(prefix + ".content");
                    return false;
                case ContentState.Null:
                    problem = new("Invalid value for 'content': expected a string, got null.", prefix + ".content", "invalid_type");
                    return false;
                case ContentState.EmptyArray:
                    problem = new($"Invalid '{prefix}.content': empty array. Expected an array with minimum length 1, but got an empty array instead.", prefix + ".content", "empty_array");
                    return false;
            }
        }

        if (message.Role == MessageRole.Tool)
        {
            if (!message.HasToolCallId)
            {
                problem = new("Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.", prefix + ".tool_call_id", "missing_required_parameter");
                return false;
            }

            if (!answeringToolCalls)
            {
                // "preceeding" is OpenAI's spelling; clients match on this text.
                problem = new("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", prefix + ".role", "invalid_value");
                return false;
            }
        }

        if (message.Images > 0 && message.Role != MessageRole.User)
        {
            problem = new(
                $"Invalid '{prefix}'. Image URLs are only allowed for messages with role 'user', but this message with role '{RoleName(message.Role)}' contains an image URL.",
                prefix,
                "invalid_value");
            return false;
        }

        // Tool results answer the assistant message with tool_calls just before them, and each other.
        answeringToolCalls = message.Role == MessageRole.Tool ? answeringToolCalls : message is { Role: MessageRole.Assistant, HasToolCalls: true };
        return true;
    }

    private static bool ReadPartType(ref Utf8JsonReader reader, int messageIndex, int part, out PartType type, out RequestProblem problem)
    {
        problem = default;
        type = PartType.None;
        var param = $"messages[{messageIndex}].content[{part}].type";
        if (reader.TokenType != JsonTokenType.String)
        {
            return TypeError(param, "a string", ref reader, out problem);
        }

        type = reader.ValueTextEquals("text"u8) ? PartType.Text
            : reader.ValueTextEquals("image_url"u8) ? PartType.ImageUrl
            : reader.ValueTextEquals("input_audio"u8) || reader.ValueTextEquals("file"u8) || reader.ValueTextEquals("refusal"u8) ? PartType.Other
            : PartType.None;
        return type != PartType.None || InvalidValue(ref reader, param, PartTypeValues, out problem);
    }

    private static bool CheckPart(PartType type, bool hasText, bool hasImage, int messageIndex, int part, out RequestProblem problem)
    {
        problem = default;
        var prefix = $"messages[{messageIndex}].content[{part}]";
        var missing = type switch
        {
            PartType.None => ".type",
            PartType.Text when !hasText => ".text",
            PartType.ImageUrl when !hasImage => ".image_url",
            _ => null,
        };
        if (missing is null)
        {
            return true;
        }

        problem = Missing(prefix + missing);
        return false;
    }

    // Message names go into the prompt as a speaker tag: OpenAI refuses whitespace and tag characters.
    private static bool CheckMessageName(ref Utf8JsonReader reader, int index, out RequestProblem problem)
    {
        problem = default;
        Span<char> buffer = stackalloc char[128];
        var name = Unescaped(in reader, buffer, out _);
        var valid = name.Length > 0;
        foreach (var c in name)
        {
            valid &= !char.IsWhiteSpace(c) && c is not ('<' or '|' or '\\' or '/' or '>');
        }

        if (valid)
        {
            return true;
        }

        var param = $"messages[{index}].name";
        problem = new($"Invalid '{param}': string does not match pattern. Expected a string that matches the pattern '^[^\\s<|\\\\/>]+$'.", param, "invalid_value");
        return false;
    }

    /// <summary>Reads <c>tools</c> (the reader is on its <c>[</c>) and leaves the reader on its <c>]</c>.</summary>
    private static bool ReadTools(ref Utf8JsonReader reader, out bool any, out RequestProblem problem)
    {
        problem = default;
        any = false;
        var index = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError($"tools[{index}]", "an object", ref reader, out problem);
            }

            var sawType = false;
            var isFunction = false;
            var sawFunction = false;
            var sawName = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError($"tools[{index}].type", "a string", ref reader, out problem);
                    }

                    isFunction = reader.ValueTextEquals("function"u8);
                    if (!isFunction && !reader.ValueTextEquals("custom"u8))
                    {
                        return InvalidValue(ref reader, $"tools[{index}].type", "'function' and 'custom'", out problem);
                    }

                    sawType = true;
                }
                else if (reader.ValueTextEquals("function"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        return TypeError($"tools[{index}].function", "an object", ref reader, out problem);
                    }

                    sawFunction = true;
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("name"u8))
                        {
                            reader.Read();
                            if (reader.TokenType != JsonTokenType.String)
                            {
                                return TypeError($"tools[{index}].function.name", "a string", ref reader, out problem);
                            }

                            if (!CheckFunctionName(ref reader, $"tools[{index}].function.name", out problem))
                            {
                                return false;
                            }

                            sawName = true;
                        }
                        else
                        {
                            reader.Read();
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            var missing = !sawType ? ".type" : isFunction && !sawFunction ? ".function" : sawFunction && !sawName ? ".function.name" : null;
            if (missing is not null)
            {
                problem = Missing($"tools[{index}]{missing}");
                return false;
            }

            index++;
        }

        if (index > MaxTools)
        {
            problem = ArrayTooLong("tools", MaxTools, index);
            return false;
        }

        any = index > 0;
        return true;
    }

    private static bool CheckFunctionName(ref Utf8JsonReader reader, string param, out RequestProblem problem)
    {
        problem = default;
        Span<char> buffer = stackalloc char[128];
        var name = Unescaped(in reader, buffer, out var length);
        if (length > MaxFunctionNameLength)
        {
            problem = new($"Invalid '{param}': string too long. Expected a string with maximum length {MaxFunctionNameLength}, but got a string with length {length} instead.", param, "string_above_max_length");
            return false;
        }

        var valid = name.Length > 0;
        foreach (var c in name)
        {
            valid &= char.IsAsciiLetterOrDigit(c) || c is '_' or '-';
        }

        if (valid)
        {
            return true;
        }

        problem = new($"Invalid '{param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", param, "invalid_value");
        return false;
    }

    private static bool ReadToolChoice(ref Utf8JsonReader reader, out RequestProblem problem)
    {
        problem = default;
        reader.Read();
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return true;
            case JsonTokenType.String:
                // "any" is Anthropic's word for "required": a client ported from there meets this first.
                return reader.ValueTextEquals("auto"u8) || reader.ValueTextEquals("none"u8) || reader.ValueTextEquals("required"u8)
                    || InvalidValue(ref reader, "tool_choice", "'none', 'auto', and 'required'", out problem);
            case JsonTokenType.StartObject:
                reader.Skip();
                return true;
            default:
                return TypeError("tool_choice", "a string or an object", ref reader, out problem);
        }
    }

    private static bool ReadStop(ref Utf8JsonReader reader, out RequestProblem problem)
    {
        problem = default;
        reader.Read();
        switch (reader.TokenType)
        {
            case JsonTokenType.Null or JsonTokenType.String:
                return true;
            case JsonTokenType.StartArray:
                break;
            default:
                return TypeError("stop", "a string or an array of strings", ref reader, out problem);
        }

        var count = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.String)
            {
                return TypeError($"stop[{count}]", "a string", ref reader, out problem);
            }

            count++;
        }

        if (count > MaxStopSequences)
        {
            problem = ArrayTooLong("stop", MaxStopSequences, count);
            return false;
        }

        return true;
    }

    // logit_bias maps token ids (as object keys) to a bias from -100 to 100.
    private static bool ReadLogitBias(ref Utf8JsonReader reader, out RequestProblem problem)
    {
        problem = default;
        reader.Read();
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return TypeError("logit_bias", "an object", ref reader, out problem);
        }

        Span<char> buffer = stackalloc char[32];
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var key = Unescaped(in reader, buffer, out _);
            var isTokenId = key.Length is > 0 and <= 10;
            foreach (var c in key)
            {
                isTokenId &= char.IsAsciiDigit(c);
            }

            if (!isTokenId)
            {
                problem = new($"Invalid key in 'logit_bias': {Shorten(key)}. You should only be submitting non-negative integers.", "logit_bias", "invalid_value");
                return false;
            }

            var param = "logit_bias." + key.ToString();
            reader.Read();
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDouble(out var bias))
            {
                return TypeError(param, "a number", ref reader, out problem);
            }

            if (bias is < -100 or > 100)
            {
                problem = new($"Invalid '{param}': expected a value between -100 and 100, but got {bias.ToString(CultureInfo.InvariantCulture)} instead.", param, "invalid_value");
                return false;
            }
        }

        return true;
    }

    private static bool ReadEncodingFormat(ref Utf8JsonReader reader, out RequestProblem problem)
    {
        problem = default;
        reader.Read();
        return reader.TokenType switch
        {
            JsonTokenType.Null => true,
            JsonTokenType.String => reader.ValueTextEquals("float"u8) || reader.ValueTextEquals("base64"u8)
                || InvalidValue(ref reader, "encoding_format", "'float' and 'base64'", out problem),
            _ => TypeError("encoding_format", "a string", ref reader, out problem),
        };
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> (a 400 in TryParse) when the short string's escapes are not text.</summary>
    private static void CheckUnescapes(in Utf8JsonReader reader)
    {
        Span<char> buffer = stackalloc char[MaxModelNameLength];
        _ = Unescaped(in reader, buffer, out _);
    }

    private static bool IsNonEmptyArray(Utf8JsonReader reader)
    {
        // A copy of the reader looks one token ahead without moving the caller's.
        return reader.TokenType == JsonTokenType.StartArray && reader.Read() && reader.TokenType != JsonTokenType.EndArray;
    }

    /// <summary>The current string or property name, unescaped; into <paramref name="buffer"/> when it fits.</summary>
    private static ReadOnlySpan<char> Unescaped(in Utf8JsonReader reader, Span<char> buffer, out int length)
    {
        // A read-only view (no ref), so the compiler knows the buffer cannot escape into the reader.
        // Unescaped text is never longer, in UTF-16 code units, than its raw UTF-8 bytes.
        try
        {
            if (reader.ValueSpan.Length <= buffer.Length)
            {
                length = reader.CopyString(buffer);
                return buffer[..length];
            }

            var text = reader.GetString() ?? string.Empty;
            length = text.Length;
            return text;
        }
        catch (InvalidOperationException ex)
        {
            // The bytes are valid UTF-8 (checked first), so only a \u escape of a lone surrogate gets here.
            throw new InvalidEscapeException(ex);
        }
    }

    /// <summary>A string's <c>\u</c> escapes do not make text; TryParse answers it with a 400.</summary>
    private sealed class InvalidEscapeException(Exception inner) : Exception("A JSON string escapes a lone surrogate.", inner);

    private static bool InvalidValue(ref Utf8JsonReader reader, string param, string supported, out RequestProblem problem)
    {
        Span<char> buffer = stackalloc char[128];
        var value = Unescaped(in reader, buffer, out _);
        problem = new($"Invalid value: '{Shorten(value)}'. Supported values are: {supported}.", param, "invalid_value");
        return false;
    }

    private static RequestProblem Missing(string param) => new($"Missing required parameter: '{param}'.", param, "missing_required_parameter");

    private static RequestProblem ArrayTooLong(string param, int max, int count)
        => new($"Invalid '{param}': array too long. Expected an array with maximum length {max}, but got an array with length {count} instead.", param, "array_above_max_length");

    // A refused value is echoed back, but never a megabyte of it.
    private static string Shorten(ReadOnlySpan<char> value) => value.Length <= 64 ? value.ToString() : string.Concat(value[..64], "…");

    private static string RoleName(MessageRole role) => role switch
    {
        MessageRole.System => "system",
        MessageRole.Developer => "developer",
        MessageRole.Assistant => "assistant",
        MessageRole.Tool => "tool",
        MessageRole.Function => "function",
        _ => "user",
    };
}
