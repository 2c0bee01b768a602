using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Anthropic;

/// <summary>A Messages API request body, checked the way Anthropic checks it and reduced to <see cref="RequestFacts"/>.</summary>
internal sealed class AnthropicRequest
{
    /// <summary>The version that removed the sampling parameters (and takes the key as a bearer token).</summary>
    public const string Version20261021 = "2026-10-21";

    private static readonly string[] SamplingParameters = ["temperature", "top_p", "top_k"];

    public RequestFacts? Facts { get; private init; }

    /// <summary>A 400 <c>invalid_request_error</c> message, when the body is refused.</summary>
    public string? Error { get; private init; }

    public static AnthropicRequest Parse(JsonElement root, string? pathModel, string? version, bool countTokens, bool vertex)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return Refuse("Input should be a valid dictionary");
        }

        var model = pathModel ?? JsonBytes.String(root, "model"u8);
        if (model is null)
        {
            return Refuse("model: Field required");
        }

        if (vertex)
        {
            // Claude on Vertex AI takes the version in the body: "vertex-2023-10-16", or "2026-10-21" from the current SDKs.
            version = JsonBytes.String(root, "anthropic_version"u8);
            if (version is null)
            {
                return Refuse("anthropic_version: Field required");
            }
        }

        if (!JsonBytes.TryArray(root, "messages"u8, out var messages))
        {
            return Refuse("messages: Field required");
        }

        int? maxTokens = null;
        if (root.TryGetProperty("max_tokens"u8, out var max) && max.ValueKind == JsonValueKind.Number && max.TryGetInt32(out var maxValue))
        {
            maxTokens = maxValue;
        }
        else if (!countTokens)
        {
            return Refuse("max_tokens: Field required");
        }

        if (version == Version20261021)
        {
            foreach (var name in SamplingParameters)
            {
                if (root.TryGetProperty(name, out _))
                {
                    return Refuse(name + ": Extra inputs are not permitted");
                }
            }
        }

        long characters = JsonBytes.TextCharacters(messages);
        if (root.TryGetProperty("system"u8, out var system))
        {
            characters += JsonBytes.TextCharacters(system);
        }

        string? prefill = null;
        var count = messages.GetArrayLength();
        if (count > 0 && messages[count - 1] is { ValueKind: JsonValueKind.Object } last && JsonBytes.String(last, "role"u8) == "assistant"
            && last.TryGetProperty("content"u8, out var lastContent))
        {
            prefill = ContentText(lastContent);
        }

        var tools = new List<string>();
        if (JsonBytes.TryArray(root, "tools"u8, out var toolArray))
        {
            foreach (var tool in toolArray.EnumerateArray())
            {
                if (JsonBytes.String(tool, "name"u8) is { } name)
                {
                    tools.Add(name);
                }
            }
        }

        string? forced = null;
        var disabled = false;
        if (JsonBytes.TryObject(root, "tool_choice"u8, out var choice))
        {
            switch (JsonBytes.String(choice, "type"u8))
            {
                case "none":
                    disabled = true;
                    break;
                case "tool":
                    forced = JsonBytes.String(choice, "name"u8);
                    break;
            }
        }

        var thinking = JsonBytes.TryObject(root, "thinking"u8, out var thinkingConfig)
            && JsonBytes.String(thinkingConfig, "type"u8) is "enabled" or "adaptive";

        var stops = new List<string>();
        if (JsonBytes.TryArray(root, "stop_sequences"u8, out var stopArray))
        {
            foreach (var stop in stopArray.EnumerateArray())
            {
                if (stop.ValueKind == JsonValueKind.String)
                {
                    stops.Add(stop.GetString()!);
                }
            }
        }

        return new AnthropicRequest
        {
            Facts = new RequestFacts
            {
                Model = model,
                Stream = root.TryGetProperty("stream"u8, out var stream) && stream.ValueKind == JsonValueKind.True,
                PromptTokens = TokenEstimator.FromCharacters(characters),
                ToolNames = tools,
                ForcedTool = forced,
                ToolsDisabled = disabled,
                ThinkingRequested = thinking,
                Prefill = prefill,
                MaxTokens = maxTokens,
                StopSequences = stops,
            },
        };
    }

    private static AnthropicRequest Refuse(string message) => new() { Error = message };

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
        foreach (var block in content.EnumerateArray())
        {
            if (JsonBytes.String(block, "type"u8) == "text" && JsonBytes.String(block, "text"u8) is { } text)
            {
                builder.Append(text);
            }
        }

        return builder.ToString();
    }
}
