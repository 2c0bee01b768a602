using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Bedrock;

/// <summary>A Converse / ConverseStream body, checked as Bedrock checks it and reduced to <see cref="RequestFacts"/>.</summary>
internal sealed class ConverseRequest
{
    public RequestFacts? Facts { get; private init; }

    /// <summary>A <c>ValidationException</c> message, when the body is refused.</summary>
    public string? Error { get; private init; }

    public static ConverseRequest Parse(JsonElement root, string model, bool stream)
    {
        if (root.ValueKind != JsonValueKind.Object || !JsonBytes.TryArray(root, "messages"u8, out var messages))
        {
            return new ConverseRequest { Error = "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null" };
        }

        if (messages.GetArrayLength() == 0)
        {
            return new ConverseRequest { Error = "A conversation must start with a user message. Try again with a conversation that starts with a user message." };
        }

        var characters = JsonBytes.TextCharacters(messages);
        if (JsonBytes.TryArray(root, "system"u8, out var system))
        {
            characters += JsonBytes.TextCharacters(system);
        }

        string? prefill = null;
        var last = messages[messages.GetArrayLength() - 1];
        if (JsonBytes.String(last, "role"u8) == "assistant" && JsonBytes.TryArray(last, "content"u8, out var lastContent))
        {
            var builder = new StringBuilder();
            foreach (var block in lastContent.EnumerateArray())
            {
                builder.Append(JsonBytes.String(block, "text"u8));
            }

            prefill = builder.ToString();
        }

        var tools = new List<string>();
        string? forced = null;
        if (JsonBytes.TryObject(root, "toolConfig"u8, out var toolConfig))
        {
            if (JsonBytes.TryArray(toolConfig, "tools"u8, out var toolArray))
            {
                foreach (var tool in toolArray.EnumerateArray())
                {
                    if (JsonBytes.TryObject(tool, "toolSpec"u8, out var spec) && JsonBytes.String(spec, "name"u8) is { } name)
                    {
                        tools.Add(name);
                    }
                }
            }

            if (JsonBytes.TryObject(toolConfig, "toolChoice"u8, out var choice) && JsonBytes.TryObject(choice, "tool"u8, out var chosen))
            {
                forced = JsonBytes.String(chosen, "name"u8);
            }
        }

        int? maxTokens = null;
        var stops = new List<string>();
        if (JsonBytes.TryObject(root, "inferenceConfig"u8, out var inference))
        {
            if (inference.TryGetProperty("maxTokens"u8, out var max) && max.ValueKind == JsonValueKind.Number && max.TryGetInt32(out var maxValue))
            {
                maxTokens = maxValue;
            }

            if (JsonBytes.TryArray(inference, "stopSequences"u8, out var stopArray))
            {
                foreach (var stop in stopArray.EnumerateArray())
                {
                    if (stop.ValueKind == JsonValueKind.String)
                    {
                        stops.Add(stop.GetString()!);
                    }
                }
            }
        }

        // Claude's extended thinking rides in the model-specific fields: {"thinking":{"type":"enabled",..}};
        // other models take {"reasoning_config":{..}}.
        var thinking = false;
        if (JsonBytes.TryObject(root, "additionalModelRequestFields"u8, out var additional))
        {
            thinking = (JsonBytes.TryObject(additional, "thinking"u8, out var thinkingConfig) && JsonBytes.String(thinkingConfig, "type"u8) is "enabled" or "adaptive")
                || JsonBytes.TryObject(additional, "reasoning_config"u8, out _);
        }

        return new ConverseRequest
        {
            Facts = new RequestFacts
            {
                Model = model,
                Stream = stream,
                PromptTokens = TokenEstimator.FromCharacters(characters),
                ToolNames = tools,
                ForcedTool = forced,
                ThinkingRequested = thinking,
                Prefill = prefill,
                MaxTokens = maxTokens,
                StopSequences = stops,
            },
        };
    }
}
