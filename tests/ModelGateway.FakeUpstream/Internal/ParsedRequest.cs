using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>A request validation failure, reported as an OpenAI 400.</summary>
internal sealed record RequestError(string Message, string? Param = null, string? Code = null);

/// <summary>What the fake needs from a request body, extracted once so the document can be released early.</summary>
internal sealed class ParsedRequest
{
    private const int MaxChoices = 128;
    private const int MaxDimensions = 65536;

    private List<EmbeddingInput>? _embeddingInputs;

    public string? Model { get; private set; }

    public bool Stream { get; private set; }

    public bool IncludeUsage { get; private set; }

    public int N { get; private set; } = 1;

    /// <summary>Estimated prompt tokens: ceil(characters / 4) of all prompt text, plus given token ids.</summary>
    public int PromptTokens { get; private set; } = 1;

    /// <summary>Chat: name of the function a tool call would go to, or null when no tool call is possible.</summary>
    public string? ToolName { get; private set; }

    /// <summary>Chat: <c>response_format</c> asks for JSON.</summary>
    public bool JsonResponse { get; private set; }

    /// <summary>Chat: the assistant text to continue (<c>continue_final_message</c>), if any.</summary>
    public string? Prefill { get; private set; }

    /// <summary>Legacy completions: number of prompts (each gets <see cref="N"/> choices).</summary>
    public int PromptCount { get; private set; } = 1;

    public List<EmbeddingInput> EmbeddingInputs => _embeddingInputs ??= [];

    public int? Dimensions { get; private set; }

    public bool Base64 { get; private set; }

    public RequestError? Error { get; private set; }

    public static ParsedRequest Parse(UpstreamEndpoint endpoint, JsonElement root)
    {
        var request = new ParsedRequest();
        if (root.ValueKind != JsonValueKind.Object)
        {
            request.Error = new RequestError(
                "Invalid type for body: expected an object, but got " + root.ValueKind.ToString().ToLowerInvariant() + " instead.");
            return request;
        }

        if (root.TryGetProperty("model"u8, out var model) && model.ValueKind == JsonValueKind.String)
        {
            request.Model = model.GetString();
        }

        request.Stream = root.TryGetProperty("stream"u8, out var stream) && stream.ValueKind == JsonValueKind.True;
        request.IncludeUsage = request.Stream
            && root.TryGetProperty("stream_options"u8, out var streamOptions)
            && streamOptions.ValueKind == JsonValueKind.Object
            && streamOptions.TryGetProperty("include_usage"u8, out var includeUsage)
            && includeUsage.ValueKind == JsonValueKind.True;
        if (root.TryGetProperty("n"u8, out var n) && n.ValueKind == JsonValueKind.Number && n.TryGetInt32(out var choices))
        {
            request.N = Math.Clamp(choices, 1, MaxChoices);
        }

        switch (endpoint)
        {
            case UpstreamEndpoint.ChatCompletions:
                request.ParseChat(root);
                break;
            case UpstreamEndpoint.Completions:
                request.ParseCompletion(root);
                break;
            case UpstreamEndpoint.Embeddings:
                request.ParseEmbeddings(root);
                break;
        }

        return request;
    }

    private void ParseChat(JsonElement root)
    {
        if (!root.TryGetProperty("messages"u8, out var messages) || messages.ValueKind == JsonValueKind.Null)
        {
            Error = new RequestError("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
            return;
        }

        if (messages.ValueKind != JsonValueKind.Array)
        {
            Error = new RequestError("Invalid type for 'messages': expected an array.", "messages", "invalid_type");
            return;
        }

        long characters = 0;
        JsonElement last = default;
        foreach (var message in messages.EnumerateArray())
        {
            last = message;
            if (message.ValueKind == JsonValueKind.Object && message.TryGetProperty("content"u8, out var content))
            {
                characters += CountContent(content);
            }
        }

        PromptTokens = TokenEstimator.FromCharacters(characters);

        if (root.TryGetProperty("continue_final_message"u8, out var continueFinal)
            && continueFinal.ValueKind == JsonValueKind.True
            && last.ValueKind == JsonValueKind.Object
            && last.TryGetProperty("role"u8, out var role)
            && role.ValueEquals("assistant"u8)
            && last.TryGetProperty("content"u8, out var lastContent))
        {
            Prefill = ContentText(lastContent);
        }

        if (root.TryGetProperty("response_format"u8, out var format)
            && format.ValueKind == JsonValueKind.Object
            && format.TryGetProperty("type"u8, out var formatType)
            && (formatType.ValueEquals("json_object"u8) || formatType.ValueEquals("json_schema"u8)))
        {
            JsonResponse = true;
        }

        ToolName = ChooseTool(root);
    }

    private static string? ChooseTool(JsonElement root)
    {
        if (!root.TryGetProperty("tools"u8, out var tools) || tools.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        if (root.TryGetProperty("tool_choice"u8, out var choice))
        {
            if (choice.ValueKind == JsonValueKind.String && choice.ValueEquals("none"u8))
            {
                return null;
            }

            if (choice.ValueKind == JsonValueKind.Object
                && choice.TryGetProperty("function"u8, out var chosen)
                && chosen.ValueKind == JsonValueKind.Object
                && chosen.TryGetProperty("name"u8, out var chosenName)
                && chosenName.ValueKind == JsonValueKind.String)
            {
                return chosenName.GetString();
            }
        }

        foreach (var tool in tools.EnumerateArray())
        {
            if (tool.ValueKind == JsonValueKind.Object
                && tool.TryGetProperty("function"u8, out var function)
                && function.ValueKind == JsonValueKind.Object
                && function.TryGetProperty("name"u8, out var name)
                && name.ValueKind == JsonValueKind.String)
            {
                return name.GetString();
            }
        }

        return null;
    }

    private void ParseCompletion(JsonElement root)
    {
        if (!root.TryGetProperty("prompt"u8, out var prompt))
        {
            return;
        }

        long characters = 0;
        long tokens = 0;
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                characters = CountString(prompt);
                break;
            case JsonValueKind.Array:
                var count = 0;
                var isTokenList = false;
                foreach (var item in prompt.EnumerateArray())
                {
                    switch (item.ValueKind)
                    {
                        case JsonValueKind.String:
                            characters += CountString(item);
                            count++;
                            break;
                        case JsonValueKind.Number:
                            tokens++;
                            isTokenList = true;
                            break;
                        case JsonValueKind.Array:
                            tokens += item.GetArrayLength();
                            count++;
                            break;
                    }
                }

                PromptCount = isTokenList ? 1 : Math.Clamp(count, 1, MaxChoices);
                break;
        }

        PromptTokens = (int)Math.Min(int.MaxValue, tokens + (characters > 0 || tokens == 0 ? TokenEstimator.FromCharacters(characters) : 0));
    }

    private void ParseEmbeddings(JsonElement root)
    {
        if (!root.TryGetProperty("input"u8, out var input) || input.ValueKind == JsonValueKind.Null)
        {
            Error = new RequestError("Missing required parameter: 'input'.", "input", "missing_required_parameter");
            return;
        }

        long tokens = 0;
        switch (input.ValueKind)
        {
            case JsonValueKind.String:
                AddText(input);
                break;
            case JsonValueKind.Array:
                var ids = new List<int>();
                foreach (var item in input.EnumerateArray())
                {
                    switch (item.ValueKind)
                    {
                        case JsonValueKind.String:
                            AddText(item);
                            break;
                        case JsonValueKind.Number when item.TryGetInt32(out var id):
                            ids.Add(id);
                            break;
                        case JsonValueKind.Array:
                            var inner = new List<int>();
                            foreach (var token in item.EnumerateArray())
                            {
                                if (token.ValueKind == JsonValueKind.Number && token.TryGetInt32(out var innerId))
                                {
                                    inner.Add(innerId);
                                }
                            }

                            EmbeddingInputs.Add(new EmbeddingInput(null, [.. inner]));
                            tokens += Math.Max(1, inner.Count);
                            break;
                        default:
                            Error = InvalidInput();
                            return;
                    }
                }

                if (ids.Count > 0)
                {
                    EmbeddingInputs.Add(new EmbeddingInput(null, [.. ids]));
                    tokens += ids.Count;
                }

                break;
        }

        if (EmbeddingInputs.Count == 0)
        {
            Error = InvalidInput();
            return;
        }

        PromptTokens = (int)Math.Min(int.MaxValue, tokens);

        if (root.TryGetProperty("dimensions"u8, out var dimensions) && dimensions.ValueKind == JsonValueKind.Number)
        {
            if (!dimensions.TryGetInt32(out var value) || value < 1 || value > MaxDimensions)
            {
                Error = new RequestError("Invalid 'dimensions': must be a positive integer.", "dimensions", "invalid_value");
                return;
            }

            Dimensions = value;
        }

        Base64 = root.TryGetProperty("encoding_format"u8, out var encoding) && encoding.ValueEquals("base64"u8);

        void AddText(JsonElement text)
        {
            EmbeddingInputs.Add(new EmbeddingInput(text.GetString() ?? string.Empty, null));
            tokens += TokenEstimator.FromCharacters(CountString(text));
        }
    }

    private static RequestError InvalidInput() =>
        new("'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", "input");

    /// <summary>Characters of a message's content: a string, or the text parts of an array.</summary>
    private static long CountContent(JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            return CountString(content);
        }

        long characters = 0;
        if (content.ValueKind == JsonValueKind.Array)
        {
            foreach (var part in content.EnumerateArray())
            {
                if (part.ValueKind == JsonValueKind.Object
                    && part.TryGetProperty("text"u8, out var text)
                    && text.ValueKind == JsonValueKind.String)
                {
                    characters += CountString(text);
                }
            }
        }

        return characters;
    }

    private static string? ContentText(JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString();
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var builder = new StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind == JsonValueKind.Object
                && part.TryGetProperty("text"u8, out var text)
                && text.ValueKind == JsonValueKind.String)
            {
                builder.Append(text.GetString());
            }
        }

        return builder.ToString();
    }

    /// <summary>UTF-16 length of a JSON string, without allocating it when it has no escapes.</summary>
    private static int CountString(JsonElement value)
    {
        var raw = JsonMarshal.GetRawUtf8Value(value);
        if (raw.Length >= 2 && raw.IndexOf((byte)'\\') < 0)
        {
            return Encoding.UTF8.GetCharCount(raw[1..^1]);
        }

        return value.GetString()?.Length ?? 0;
    }
}
