using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Gemini;

/// <summary>A <c>GenerateContentRequest</c> (Gemini API and Vertex AI), checked as Google checks it and reduced to <see cref="RequestFacts"/>.</summary>
internal sealed class GeminiRequest
{
    public RequestFacts? Facts { get; private init; }

    /// <summary>A 400 <c>INVALID_ARGUMENT</c> message, when the body is refused.</summary>
    public string? Error { get; private init; }

    public static GeminiRequest Parse(JsonElement root, string model, bool stream)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return new GeminiRequest { Error = "Invalid JSON payload received. Expected an object." };
        }

        if (!JsonBytes.TryArray(root, "contents"u8, out var contents) || contents.GetArrayLength() == 0)
        {
            return new GeminiRequest { Error = "* GenerateContentRequest.contents: contents is not specified\n" };
        }

        var characters = JsonBytes.TextCharacters(contents);
        if (JsonBytes.TryObject(root, "systemInstruction"u8, out var system) || JsonBytes.TryObject(root, "system_instruction"u8, out system))
        {
            characters += JsonBytes.TextCharacters(system);
        }

        var tools = new List<string>();
        if (JsonBytes.TryArray(root, "tools"u8, out var toolArray))
        {
            foreach (var tool in toolArray.EnumerateArray())
            {
                if (JsonBytes.TryArray(tool, "functionDeclarations"u8, out var declarations) || JsonBytes.TryArray(tool, "function_declarations"u8, out declarations))
                {
                    foreach (var declaration in declarations.EnumerateArray())
                    {
                        if (JsonBytes.String(declaration, "name"u8) is { } name)
                        {
                            tools.Add(name);
                        }
                    }
                }
            }
        }

        string? forced = null;
        var disabled = false;
        if (JsonBytes.TryObject(root, "toolConfig"u8, out var toolConfig) && JsonBytes.TryObject(toolConfig, "functionCallingConfig"u8, out var calling))
        {
            switch (JsonBytes.String(calling, "mode"u8))
            {
                case "NONE":
                    disabled = true;
                    break;
                case "ANY" when JsonBytes.TryArray(calling, "allowedFunctionNames"u8, out var allowed) && allowed.GetArrayLength() > 0:
                    forced = allowed[0].GetString();
                    break;
            }
        }

        int? maxTokens = null;
        var thinking = false;
        var stops = new List<string>();
        if (JsonBytes.TryObject(root, "generationConfig"u8, out var generation))
        {
            if (generation.TryGetProperty("maxOutputTokens"u8, out var max) && max.ValueKind == JsonValueKind.Number && max.TryGetInt32(out var maxValue))
            {
                maxTokens = maxValue;
            }

            thinking = JsonBytes.TryObject(generation, "thinkingConfig"u8, out var thinkingConfig)
                && thinkingConfig.TryGetProperty("includeThoughts"u8, out var include)
                && include.ValueKind == JsonValueKind.True;
            if (JsonBytes.TryArray(generation, "stopSequences"u8, out var stopArray))
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

        return new GeminiRequest
        {
            Facts = new RequestFacts
            {
                Model = model,
                Stream = stream,
                PromptTokens = TokenEstimator.FromCharacters(characters),
                ToolNames = tools,
                ForcedTool = forced,
                ToolsDisabled = disabled,
                ThinkingRequested = thinking,
                MaxTokens = maxTokens,
                StopSequences = stops,
            },
        };
    }
}
