using System.Text.Json;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Anthropic;

/// <summary>
/// Reads and validates an Anthropic Messages body in one <see cref="Utf8JsonReader"/> pass, into the
/// neutral facts routing and limits need. It refuses what Anthropic refuses for its shape (types, required
/// fields, ranges), in Anthropic's words, so a bad request never costs an upstream call; but it accepts
/// every field and block type it does not know, as Anthropic does under its betas: Claude Code answers a
/// 400 by silently dropping the feature, so an unknown field must never be one.
/// </summary>
internal static class MessagesRequestParser
{
    /// <summary>Anthropic's largest <c>stop_sequences</c> list is not documented; this bounds a pathological one.</summary>
    private const int MaxStopSequences = 8191;

    /// <summary>Smallest thinking budget Anthropic accepts.</summary>
    private const int MinimumThinkingBudget = 1024;

    /// <summary>Validates <paramref name="body"/>; with <paramref name="countOnly"/> (<c>/v1/messages/count_tokens</c>) <c>max_tokens</c> is not asked for.</summary>
    public static bool TryParse(ReadOnlySpan<byte> body, int maxDepth, bool countOnly, out RequestInfo info, out RequestProblem problem)
    {
        info = default;
        info.N = 1;
        info.MaxTokensIsCeiling = true;
        problem = default;
        if (!RequestParser.IsValidUtf8(body, out problem))
        {
            return false;
        }

        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = maxDepth, CommentHandling = JsonCommentHandling.Disallow });
        var sawMessages = false;
        var sawMaxTokens = false;
        int? thinkingBudget = null;
        var hasSystem = false;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                problem = Problem("The request body must be a JSON object.");
                return false;
            }

            info.BodyStart = (int)reader.TokenStartIndex;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError("model", "a valid string", ref reader, out problem);
                    }

                    if (reader.ValueSpan.Length > RequestModel.MaxLength)
                    {
                        problem = Problem($"model: String should have at most {RequestModel.MaxLength} characters");
                        return false;
                    }

                    info.ModelStart = (int)reader.TokenStartIndex;
                    info.ModelLength = reader.ValueSpan.Length + 2;
                    if (reader.ValueIsEscaped)
                    {
                        _ = reader.GetString();
                    }
                }
                else if (reader.ValueTextEquals("messages"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return TypeError("messages", "a valid list", ref reader, out problem);
                    }

                    if (!ReadMessages(ref reader, ref info, out problem))
                    {
                        return false;
                    }

                    sawMessages = true;
                }
                else if (reader.ValueTextEquals("system"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.TextBytes += reader.ValueSpan.Length;
                        hasSystem |= reader.ValueSpan.Length > 0;
                    }
                    else if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        var images = 0;
                        if (!ReadBlocks(ref reader, ref info, "system", ref images, out var count, out problem))
                        {
                            return false;
                        }

                        hasSystem |= count > 0;
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        return TypeError("system", "a valid string or a list of text blocks", ref reader, out problem);
                    }
                }
                else if (reader.ValueTextEquals("max_tokens"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var maxTokens))
                    {
                        return TypeError("max_tokens", "a valid integer", ref reader, out problem);
                    }

                    if (maxTokens < 1)
                    {
                        problem = Problem("max_tokens: Input should be greater than or equal to 1");
                        return false;
                    }

                    info.MaxTokens = maxTokens;
                    sawMaxTokens = true;
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    reader.Read();
                    if (reader.TokenType is JsonTokenType.True or JsonTokenType.False)
                    {
                        info.Stream = reader.TokenType == JsonTokenType.True && !countOnly;
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        return TypeError("stream", "a valid boolean", ref reader, out problem);
                    }
                }
                else if (reader.ValueTextEquals("temperature"u8) || reader.ValueTextEquals("top_p"u8))
                {
                    var name = reader.ValueTextEquals("temperature"u8) ? "temperature" : "top_p";
                    if (!ReadBounded(ref reader, name, 0, 1, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("top_k"u8))
                {
                    if (!ReadBounded(ref reader, "top_k", 0, int.MaxValue, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("stop_sequences"u8))
                {
                    if (!ReadStopSequences(ref reader, ref info, out problem))
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
                        return TypeError("tools", "a valid list", ref reader, out problem);
                    }

                    // Tool definitions reach the model as text: they count towards the input.
                    var start = reader.TokenStartIndex;
                    if (!ReadTools(ref reader, ref info, out problem))
                    {
                        return false;
                    }

                    info.TextBytes += reader.BytesConsumed - start;
                }
                else if (reader.ValueTextEquals("tool_choice"u8))
                {
                    if (!ReadToolChoice(ref reader, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("thinking"u8))
                {
                    if (!ReadThinking(ref reader, out thinkingBudget, out problem))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("output_format"u8) || reader.ValueTextEquals("output_config"u8))
                {
                    // Structured output: output_format (its first beta) or output_config.format.
                    var isConfig = reader.ValueTextEquals("output_config"u8);
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject && HasJsonSchema(reader, isConfig))
                    {
                        info.ResponseFormat = ResponseFormatKind.JsonSchema;
                    }

                    reader.Skip();
                }
                else
                {
                    // metadata, context_management, service_tier, container, mcp_servers and fields added later.
                    reader.Read();
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                problem = Problem("The request body must be a single JSON object.");
                return false;
            }
        }
        catch (JsonException ex)
        {
            problem = ex.Message.Contains("maximum configured depth", StringComparison.OrdinalIgnoreCase)
                ? Problem($"The JSON body is nested more than {maxDepth} levels deep.")
                : Problem("There was an error parsing the body of your request: it is not valid JSON.");
            return false;
        }
        catch (InvalidOperationException)
        {
            // GetString on a \u escape of a lone surrogate: well-formed JSON, but not text.
            problem = Problem("There was an error parsing the body of your request: a string holds a \\u escape of a lone surrogate, which is not valid Unicode.");
            return false;
        }

        if (info.ModelLength == 0)
        {
            problem = Problem("model: Field required");
            return false;
        }

        if (!sawMessages)
        {
            problem = Problem("messages: Field required");
            return false;
        }

        if (!sawMaxTokens && !countOnly)
        {
            problem = Problem("max_tokens: Field required");
            return false;
        }

        if (thinkingBudget is { } budget && sawMaxTokens && budget >= info.MaxTokens)
        {
            problem = Problem("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size");
            return false;
        }

        if (hasSystem)
        {
            // The system prompt is one more turn for the per-message overhead of the estimate.
            info.MessageCount++;
        }

        return true;
    }

    private static bool ReadMessages(ref Utf8JsonReader reader, ref RequestInfo info, out RequestProblem problem)
    {
        problem = default;
        var index = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var path = $"messages.{index}";
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError(path, "a valid dictionary", ref reader, out problem);
            }

            var sawRole = false;
            var sawContent = false;
            var images = 0;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("role"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError(path + ".role", "'user' or 'assistant'", ref reader, out problem);
                    }

                    // "system" is not Anthropic's, but Claude Code sends it mid-conversation: accepted, never a 400.
                    if (!reader.ValueTextEquals("user"u8) && !reader.ValueTextEquals("assistant"u8) && !reader.ValueTextEquals("system"u8))
                    {
                        problem = Problem($"{path}.role: Input should be 'user' or 'assistant'");
                        return false;
                    }

                    sawRole = true;
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
                        if (!ReadBlocks(ref reader, ref info, path + ".content", ref images, out _, out problem))
                        {
                            return false;
                        }
                    }
                    else
                    {
                        return TypeError(path + ".content", "a valid string or a list of content blocks", ref reader, out problem);
                    }

                    sawContent = true;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (!sawRole || !sawContent)
            {
                problem = Problem($"{path}.{(sawRole ? "content" : "role")}: Field required");
                return false;
            }

            index++;
        }

        if (index == 0)
        {
            problem = Problem("messages: at least one message is required");
            return false;
        }

        info.MessageCount += index;
        info.MessagesEnd = (int)reader.TokenStartIndex;
        return true;
    }

    // Content blocks (messages, system, tool results). Known types are checked for their required fields;
    // types added later (server tool results, search results, container uploads...) pass unread.
    private static bool ReadBlocks(ref Utf8JsonReader reader, ref RequestInfo info, string path, ref int images, out int count, out RequestProblem problem)
    {
        problem = default;
        count = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var blockPath = $"{path}.{count}";
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError(blockPath, "a valid dictionary", ref reader, out problem);
            }

            var type = BlockType.None;
            var has = Fields.None;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError(blockPath + ".type", "a valid string", ref reader, out problem);
                    }

                    type = reader.ValueTextEquals("text"u8) ? BlockType.Text
                        : reader.ValueTextEquals("image"u8) ? BlockType.Image
                        : reader.ValueTextEquals("document"u8) ? BlockType.Document
                        : reader.ValueTextEquals("tool_use"u8) ? BlockType.ToolUse
                        : reader.ValueTextEquals("tool_result"u8) ? BlockType.ToolResult
                        : reader.ValueTextEquals("thinking"u8) ? BlockType.Thinking
                        : BlockType.Other;
                }
                else if (reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("thinking"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.TextBytes += reader.ValueSpan.Length;
                        has |= Fields.Text;
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("source"u8))
                {
                    // Base64 bytes are not text: an image costs its own estimate.
                    reader.Read();
                    has |= reader.TokenType == JsonTokenType.StartObject ? Fields.Source : Fields.None;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("id"u8) || reader.ValueTextEquals("tool_use_id"u8))
                {
                    var isId = reader.ValueTextEquals("id"u8);
                    reader.Read();
                    has |= reader.TokenType == JsonTokenType.String ? (isId ? Fields.Id : Fields.ToolUseId) : Fields.None;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("name"u8))
                {
                    reader.Read();
                    has |= reader.TokenType == JsonTokenType.String ? Fields.Name : Fields.None;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("input"u8))
                {
                    reader.Read();
                    has |= reader.TokenType == JsonTokenType.StartObject ? Fields.Input : Fields.None;
                    var start = reader.TokenStartIndex;
                    reader.Skip();
                    info.TextBytes += reader.BytesConsumed - start;
                }
                else if (reader.ValueTextEquals("content"u8))
                {
                    // A tool result: a string, or text and image blocks.
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.TextBytes += reader.ValueSpan.Length;
                    }
                    else if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        if (!ReadBlocks(ref reader, ref info, blockPath + ".content", ref images, out _, out problem))
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
                    reader.Read();
                    reader.Skip();
                }
            }

            var missing = type switch
            {
                BlockType.None => "type",
                BlockType.Text when (has & Fields.Text) == 0 => "text",
                BlockType.Image or BlockType.Document when (has & Fields.Source) == 0 => "source",
                BlockType.ToolUse when (has & Fields.Id) == 0 => "id",
                BlockType.ToolUse when (has & Fields.Name) == 0 => "name",
                BlockType.ToolUse when (has & Fields.Input) == 0 => "input",
                BlockType.ToolResult when (has & Fields.ToolUseId) == 0 => "tool_use_id",
                _ => null,
            };
            if (missing is not null)
            {
                problem = Problem($"{blockPath}.{missing}: Field required");
                return false;
            }

            if (type == BlockType.Image)
            {
                info.ImageCount++;
                images++;
            }

            count++;
        }

        return true;
    }

    private static bool ReadTools(ref Utf8JsonReader reader, ref RequestInfo info, out RequestProblem problem)
    {
        problem = default;
        var index = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var path = $"tools.{index}";
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return TypeError(path, "a valid dictionary", ref reader, out problem);
            }

            var sawName = false;
            var sawSchema = false;
            var typed = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("name"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return TypeError(path + ".name", "a valid string", ref reader, out problem);
                    }

                    sawName = true;
                }
                else if (reader.ValueTextEquals("input_schema"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        return TypeError(path + ".input_schema", "a valid dictionary", ref reader, out problem);
                    }

                    sawSchema = true;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("type"u8))
                {
                    // Server and Anthropic-defined tools (web_search_20250305, bash_20250124...) name their own type.
                    reader.Read();
                    typed = reader.TokenType == JsonTokenType.String && !reader.ValueTextEquals("custom"u8);
                    reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (!sawName)
            {
                problem = Problem($"{path}.name: Field required");
                return false;
            }

            if (!sawSchema && !typed)
            {
                problem = Problem($"{path}.custom.input_schema: Field required");
                return false;
            }

            index++;
        }

        info.HasTools |= index > 0;
        return true;
    }

    private static bool ReadToolChoice(ref Utf8JsonReader reader, out RequestProblem problem)
    {
        problem = default;
        reader.Read();
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return TypeError("tool_choice", "a valid dictionary", ref reader, out problem);
        }

        string? type = null;
        var sawName = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isType = reader.ValueTextEquals("type"u8);
            var isName = reader.ValueTextEquals("name"u8);
            reader.Read();
            if (isType && reader.TokenType == JsonTokenType.String)
            {
                type = reader.GetString();
            }
            else if (isName && reader.TokenType == JsonTokenType.String)
            {
                sawName = true;
            }
            else
            {
                reader.Skip();
            }
        }

        switch (type)
        {
            case "auto" or "any" or "none":
                return true;
            case "tool" when sawName:
                return true;
            case "tool":
                problem = Problem("tool_choice.tool.name: Field required");
                return false;
            case null:
                problem = Problem("tool_choice.type: Field required");
                return false;
            default:
                problem = Problem($"tool_choice: Input tag '{Shorten(type)}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'");
                return false;
        }
    }

    private static bool ReadThinking(ref Utf8JsonReader reader, out int? budget, out RequestProblem problem)
    {
        problem = default;
        budget = null;
        reader.Read();
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return TypeError("thinking", "a valid dictionary", ref reader, out problem);
        }

        string? type = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                type = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("budget_tokens"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var value))
                {
                    return TypeError("thinking.enabled.budget_tokens", "a valid integer", ref reader, out problem);
                }

                budget = value;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (type == "enabled")
        {
            if (budget is null)
            {
                problem = Problem("thinking.enabled.budget_tokens: Field required");
                return false;
            }

            if (budget < MinimumThinkingBudget)
            {
                problem = Problem($"thinking.enabled.budget_tokens: Input should be greater than or equal to {MinimumThinkingBudget}");
                return false;
            }
        }
        else
        {
            // adaptive, disabled and kinds added later carry no budget to check.
            budget = null;
        }

        return true;
    }

    private static bool HasJsonSchema(Utf8JsonReader reader, bool isConfig)
    {
        // A copy of the reader looks inside without moving the caller's.
        var depth = reader.CurrentDepth;
        while (reader.Read() && reader.CurrentDepth > depth)
        {
            if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != depth + (isConfig ? 2 : 1))
            {
                continue;
            }

            if (reader.ValueTextEquals("type"u8) && reader.Read() && reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("json_schema"u8))
            {
                return true;
            }
        }

        return false;
    }

    private static bool ReadStopSequences(ref Utf8JsonReader reader, ref RequestInfo info, out RequestProblem problem)
    {
        problem = default;
        reader.Read();
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            return TypeError("stop_sequences", "a valid list", ref reader, out problem);
        }

        var count = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.String)
            {
                return TypeError($"stop_sequences.{count}", "a valid string", ref reader, out problem);
            }

            info.TextBytes += reader.ValueSpan.Length;
            count++;
        }

        if (count > MaxStopSequences)
        {
            problem = Problem($"stop_sequences: List should have at most {MaxStopSequences} items after validation, not {count}");
            return false;
        }

        return true;
    }

    private static bool ReadBounded(ref Utf8JsonReader reader, string name, double min, double max, out RequestProblem problem)
    {
        problem = default;
        reader.Read();
        if (reader.TokenType == JsonTokenType.Null)
        {
            return true;
        }

        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDouble(out var value))
        {
            return TypeError(name, name == "top_k" ? "a valid integer" : "a valid number", ref reader, out problem);
        }

        if (value < min)
        {
            problem = Problem($"{name}: Input should be greater than or equal to {min}");
            return false;
        }

        if (value > max)
        {
            problem = Problem($"{name}: Input should be less than or equal to {max}");
            return false;
        }

        return true;
    }

    // Anthropic's validation messages read "<path>: Input should be <expected>".
    private static bool TypeError(string path, string expected, ref Utf8JsonReader reader, out RequestProblem problem)
    {
        reader.Skip();
        problem = Problem($"{path}: Input should be {expected}");
        return false;
    }

    private static RequestProblem Problem(string message) => new(message, null, "invalid_request_error");

    private static string Shorten(string value) => value.Length <= 64 ? value : string.Concat(value.AsSpan(0, 64), "…");

    private enum BlockType : byte
    {
        None,
        Text,
        Image,
        Document,
        ToolUse,
        ToolResult,
        Thinking,
        Other,
    }

    [Flags]
    private enum Fields : byte
    {
        None = 0,
        Text = 1,
        Source = 2,
        Id = 4,
        Name = 8,
        Input = 16,
        ToolUseId = 32,
    }
}
