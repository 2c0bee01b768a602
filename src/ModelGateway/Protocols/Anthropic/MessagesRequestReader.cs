using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Providers.Anthropic;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Anthropic;

/// <summary>
/// Reads an Anthropic Messages body (already validated by <see cref="MessagesRequestParser"/>) into the
/// canonical request, for deployments that speak another wire. What has an equivalent is mapped; what has
/// none is named in <see cref="ChatRequest.Dropped"/> (the response header and the
/// <c>modelgateway.translation.dropped</c> metric) rather than refused, because Claude Code answers a 400
/// by resending without the feature, degraded and silently. docs/providers.md has the table.
/// </summary>
internal static class MessagesRequestReader
{
    /// <summary>Anthropic thinking budgets mapped onto an effort, for wires that speak in efforts.</summary>
    private const int LowBudget = 4096;
    private const int MediumBudget = 16384;

    /// <summary>OpenAI refuses a <c>user</c> much longer than an id; Claude Code's is a JSON blob.</summary>
    private const int MaxUserLength = 64;

    public static ChatRequest Read(ReadOnlyMemory<byte> body)
    {
        var dto = JsonSerializer.Deserialize(body.Span, AnthropicJsonContext.Default.AnthropicRequest)
            ?? throw new InvalidOperationException("the body is not a Messages request");
        var request = new ChatRequest
        {
            MaxTokens = dto.MaxTokens > 0 ? dto.MaxTokens : null,
            Temperature = dto.Temperature,
            TopP = dto.TopP,
            TopK = dto.TopK,
            Stream = dto.Stream == true,
        };

        foreach (var block in dto.System ?? [])
        {
            if (block is AnthropicTextBlock text)
            {
                request.System.Add(new TextPart(text.Text) { Cache = Cache(block.CacheControl) });
            }
        }

        var serverTools = ReadTools(dto, request);
        ReadToolChoice(dto, request, serverTools);
        ReadMessages(dto, request);
        if (dto.StopSequences is { } stops)
        {
            request.Stop.AddRange(stops);
        }

        if (dto.Metadata?.UserId is { Length: > 0 } user)
        {
            if (user.Length <= MaxUserLength)
            {
                request.User = user;
            }
            else
            {
                request.Dropped.Add("metadata.user_id");
            }
        }

        ReadThinking(dto, request);
        ReadExtra(dto, request);
        return request;
    }

    // Client functions become canonical tools; server tools (web_search...) and Anthropic-defined client
    // tools (bash, text_editor, computer) have no schema another provider could use: dropped, by name.
    private static HashSet<string> ReadTools(AnthropicRequest dto, ChatRequest request)
    {
        var server = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tool in dto.Tools ?? [])
        {
            if (tool.Type is null or "custom" && tool.InputSchema is { ValueKind: JsonValueKind.Object } schema)
            {
                request.Tools.Add(new ToolDefinition(tool.Name, tool.Description, schema.Clone()) { Cache = Cache(tool.CacheControl) });
                if (tool.Extra?.TryGetValue("defer_loading", out var deferred) == true && deferred.ValueKind == JsonValueKind.True)
                {
                    // Loading on demand saves Anthropic context; elsewhere the tool is simply offered from the start.
                    AddDropped(request, "tools.defer_loading");
                }

                continue;
            }

            server.Add(tool.Name);
            AddDropped(request, "tools." + tool.Name);
        }

        return server;
    }

    private static void ReadToolChoice(AnthropicRequest dto, ChatRequest request, HashSet<string> serverTools)
    {
        if (dto.ToolChoice is not { } choice)
        {
            return;
        }

        if (choice.Type == "tool" && choice.Name is { } name && serverTools.Contains(name))
        {
            // Forcing a tool the deployment cannot run cannot be honoured by dropping it: the one clear refusal.
            throw new InvalidOperationException($"tool_choice forces the tool '{name}', which only Anthropic can run; this deployment cannot.");
        }

        request.ToolChoice = choice.Type switch
        {
            "any" => new ToolChoice(ToolChoiceKind.Required),
            "none" => new ToolChoice(ToolChoiceKind.None),
            "tool" => new ToolChoice(ToolChoiceKind.Tool, choice.Name),
            _ => new ToolChoice(ToolChoiceKind.Auto),
        };
        if (choice.DisableParallelToolUse == true)
        {
            request.ParallelToolCalls = false;
        }
    }

    private static void ReadMessages(AnthropicRequest dto, ChatRequest request)
    {
        List<string>? lastCalls = null;
        foreach (var message in dto.Messages)
        {
            switch (message.Role)
            {
                case "assistant":
                    var parts = new List<ContentPart>(message.Content.Count);
                    lastCalls = [];
                    foreach (var block in message.Content)
                    {
                        if (AssistantPart(block, request) is { } part)
                        {
                            parts.Add(part);
                            if (part is ToolCallPart call)
                            {
                                lastCalls.Add(call.Id);
                            }
                        }
                    }

                    request.Messages.Add(new ChatMessage(ChatRole.Assistant, parts));
                    break;
                case "system":
                    // Claude Code's mid-conversation system turns: kept in place where the wire allows it.
                    var system = new List<ContentPart>();
                    foreach (var block in message.Content)
                    {
                        if (block is AnthropicTextBlock text && text.Text.Length > 0)
                        {
                            system.Add(new TextPart(text.Text) { Cache = Cache(block.CacheControl) });
                        }
                    }

                    if (system.Count > 0)
                    {
                        request.Messages.Add(new ChatMessage(ChatRole.System, system));
                    }

                    break;
                default:
                    ReadUserTurn(message, request, lastCalls);
                    break;
            }
        }
    }

    // A user turn carries tool results then text: the canonical model has them as a tool turn then a user turn,
    // with the results in the order of the calls they answer (clients may send them in any order).
    private static void ReadUserTurn(AnthropicMessage message, ChatRequest request, List<string>? lastCalls)
    {
        var results = new List<ContentPart>();
        var rest = new List<ContentPart>();
        foreach (var block in message.Content)
        {
            if (block is AnthropicToolResultBlock result)
            {
                var content = new List<ContentPart>();
                foreach (var inner in result.Content ?? [])
                {
                    if (UserPart(inner, request) is { } part and (TextPart or ImagePart or DocumentPart))
                    {
                        content.Add(part);
                    }
                }

                results.Add(new ToolResultPart(result.ToolUseId, content, result.IsError == true) { Cache = Cache(block.CacheControl) });
            }
            else if (UserPart(block, request) is { } part)
            {
                rest.Add(part);
            }
        }

        if (results.Count > 0)
        {
            if (lastCalls is { Count: > 1 })
            {
                results.Sort((a, b) => Position(lastCalls, ((ToolResultPart)a).ToolCallId).CompareTo(Position(lastCalls, ((ToolResultPart)b).ToolCallId)));
            }

            request.Messages.Add(new ChatMessage(ChatRole.Tool, results));
        }

        if (rest.Count > 0 || results.Count == 0)
        {
            request.Messages.Add(new ChatMessage(ChatRole.User, rest));
        }
    }

    private static int Position(List<string> calls, string id)
    {
        var index = calls.IndexOf(id);
        return index < 0 ? int.MaxValue : index;
    }

    private static ContentPart? UserPart(AnthropicBlock block, ChatRequest request)
    {
        var cache = Cache(block.CacheControl);
        switch (block)
        {
            case AnthropicTextBlock text:
                return new TextPart(text.Text) { Cache = cache };
            case AnthropicImageBlock image:
                return image.Source.Type == "url"
                    ? new ImagePart(image.Source.Url, image.Source.MediaType, null) { Cache = cache }
                    : new ImagePart(null, image.Source.MediaType, image.Source.Data) { Cache = cache };
            case AnthropicDocumentBlock document when document.Source.Type == "text":
                return new TextPart(document.Source.Data ?? string.Empty) { Cache = cache };
            case AnthropicDocumentBlock document:
                return document.Source.Type == "url"
                    ? new DocumentPart(document.Source.Url, document.Source.MediaType, null, document.Title) { Cache = cache }
                    : new DocumentPart(null, document.Source.MediaType, document.Source.Data, document.Title) { Cache = cache };
            default:
                // Search results, container uploads, tool references...: no other wire has them.
                AddDropped(request, "content." + TypeOf(block));
                return null;
        }
    }

    private static ContentPart? AssistantPart(AnthropicBlock block, ChatRequest request)
    {
        switch (block)
        {
            case AnthropicTextBlock text:
                return new TextPart(text.Text) { Cache = Cache(block.CacheControl) };
            case AnthropicToolUseBlock call:
                return new ToolCallPart(call.Id, call.Name, call.Input.ValueKind == JsonValueKind.Object ? call.Input.GetRawText() : "{}") { Cache = Cache(block.CacheControl) };
            case AnthropicThinkingBlock thinking:
                return new ReasoningPart(thinking.Thinking, thinking.Signature);
            case AnthropicRedactedThinkingBlock redacted:
                return new RedactedReasoningPart(redacted.Data);
            default:
                // server_tool_use and its results (web search...) ran at Anthropic; another wire cannot replay them.
                AddDropped(request, "content." + TypeOf(block));
                return null;
        }
    }

    // Thinking and effort are not sent on: OpenAI-wire models that do not reason refuse reasoning_effort with
    // a 400 (which Claude Code, which always asks for thinking, would take as "thinking unsupported"), and
    // the ones that reason do so by default. An explicit budget is kept for wires that take one.
    private static void ReadThinking(AnthropicRequest dto, ChatRequest request)
    {
        switch (dto.Thinking?.Type)
        {
            case "enabled" when dto.Thinking.BudgetTokens is { } budget:
                request.Reasoning = new ReasoningRequest(budget < LowBudget ? "low" : budget < MediumBudget ? "medium" : "high", budget);
                break;
            case null or "disabled":
                break;
            default:
                AddDropped(request, "thinking");
                break;
        }
    }

    // Top-level fields the DTO does not model.
    private static void ReadExtra(AnthropicRequest dto, ChatRequest request)
    {
        foreach (var (name, value) in dto.Extra ?? [])
        {
            switch (name)
            {
                case "output_format" when value.ValueKind == JsonValueKind.Object:
                    request.Format = Format(value) ?? request.Format;
                    break;
                case "output_config" when value.ValueKind == JsonValueKind.Object:
                    foreach (var setting in value.EnumerateObject())
                    {
                        if (setting.Name == "format" && setting.Value.ValueKind == JsonValueKind.Object && Format(setting.Value) is { } format)
                        {
                            request.Format = format;
                        }
                        else if (setting.Value.ValueKind != JsonValueKind.Null)
                        {
                            AddDropped(request, "output_config." + setting.Name);
                        }
                    }

                    break;
                default:
                    if (value.ValueKind is not (JsonValueKind.Null or JsonValueKind.False))
                    {
                        AddDropped(request, name);
                    }

                    break;
            }
        }
    }

    private static OutputFormat? Format(JsonElement value)
    {
        if (!value.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "json_schema")
        {
            return null;
        }

        var schema = value.TryGetProperty("schema", out var s) && s.ValueKind == JsonValueKind.Object ? s.Clone() : (JsonElement?)null;
        return new OutputFormat(ResponseFormatKind.JsonSchema, "response", schema, Strict: true);
    }

    private static string TypeOf(AnthropicBlock block)
        => block.Extra?.TryGetValue("type", out var type) == true && type.ValueKind == JsonValueKind.String ? type.GetString()! : "unknown";

    private static void AddDropped(ChatRequest request, string field)
    {
        if (!request.Dropped.Contains(field))
        {
            request.Dropped.Add(field);
        }
    }

    private static CacheHint? Cache(AnthropicCacheControl? cache) => cache is null ? null : new CacheHint(cache.Ttl);
}
