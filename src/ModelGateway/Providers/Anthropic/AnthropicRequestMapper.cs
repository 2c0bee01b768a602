using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Anthropic;

/// <summary>
/// Writes a canonical request in Anthropic's Messages wire, following the rules of the provider's API
/// version. docs/providers.md has the mapping table: what is kept, what is translated, what is dropped.
/// </summary>
internal static class AnthropicRequestMapper
{
    /// <summary>The forced tool that carries structured output: Anthropic has no <c>response_format</c>.</summary>
    public const string JsonToolName = "json_response";

    /// <summary>Smallest thinking budget Anthropic accepts.</summary>
    public const int MinimumThinkingBudget = 1024;

    public static AnthropicRequest Map(ChatRequest request, Deployment deployment, AnthropicSettings settings, bool stream, out bool jsonTool)
    {
        jsonTool = false;
        var dto = new AnthropicRequest
        {
            Model = deployment.UpstreamModel,
            MaxTokens = request.MaxTokens ?? deployment.DefaultMaxTokens,
            Stream = stream ? true : null,
        };

        var system = new List<AnthropicBlock>();
        foreach (var part in request.System)
        {
            AddText(system, part);
        }

        var messages = dto.Messages;
        foreach (var message in request.Messages)
        {
            if (message.Role == ChatRole.System)
            {
                // Anthropic has one system prompt: later system turns join it, in order.
                foreach (var part in message.Parts.OfType<TextPart>())
                {
                    AddText(system, part);
                }

                continue;
            }

            var role = message.Role == ChatRole.Assistant ? "assistant" : "user";
            var blocks = Blocks(message, request);
            if (blocks.Count == 0)
            {
                continue;
            }

            if (messages.Count > 0 && messages[^1].Role == role)
            {
                // Anthropic's turns alternate: consecutive turns of one role become one.
                var merged = messages[^1].Content;
                merged.AddRange(blocks);
                OrderToolResultsFirst(merged);
            }
            else
            {
                messages.Add(new AnthropicMessage { Role = role, Content = blocks });
            }
        }

        TrimPrefill(messages);
        dto.System = system.Count > 0 ? system : null;

        if (request.Tools.Count > 0)
        {
            dto.Tools = [.. request.Tools.Select(tool => new AnthropicTool
            {
                Name = tool.Name,
                Description = tool.Description,
                InputSchema = tool.Parameters ?? EmptySchema,
                CacheControl = Cache(tool.Cache),
            })];
        }

        dto.ToolChoice = request.ToolChoice?.Kind switch
        {
            ToolChoiceKind.Required => new AnthropicToolChoice { Type = "any" },
            ToolChoiceKind.None => new AnthropicToolChoice { Type = "none" },
            ToolChoiceKind.Tool => new AnthropicToolChoice { Type = "tool", Name = request.ToolChoice.Name },
            ToolChoiceKind.Auto => new AnthropicToolChoice { Type = "auto" },
            _ => null,
        };

        if (request.ParallelToolCalls == false && dto.Tools is not null)
        {
            dto.ToolChoice ??= new AnthropicToolChoice { Type = "auto" };
            dto.ToolChoice.DisableParallelToolUse = true;
        }

        if (request.Format is { Kind: ResponseFormatKind.JsonSchema or ResponseFormatKind.JsonObject } format)
        {
            // Structured output as a forced tool call whose input is the answer; the decoder turns it back into text.
            jsonTool = true;
            (dto.Tools ??= []).Add(new AnthropicTool
            {
                Name = JsonToolName,
                Description = "Respond with the answer as this tool's input" + (format.Name is null ? "." : $" ({format.Name})."),
                InputSchema = format.Schema ?? EmptySchema,
            });
            dto.ToolChoice = new AnthropicToolChoice { Type = "tool", Name = JsonToolName };
        }

        var forcedTool = dto.ToolChoice?.Type is "any" or "tool";
        if (request.Reasoning is { } reasoning && Budget(reasoning) is { } budget)
        {
            if (forcedTool)
            {
                // Anthropic refuses thinking while a tool is forced; the forced tool is the client's harder requirement.
                request.Dropped.Add("reasoning_effort");
            }
            else
            {
                var visible = dto.MaxTokens;
                var limit = deployment.MaxOutputTokens ?? int.MaxValue;
                dto.MaxTokens = (int)Math.Min((long)visible + budget, limit);
                var granted = Math.Min(budget, dto.MaxTokens - 1);
                if (granted >= MinimumThinkingBudget)
                {
                    // max_tokens counts thinking too: the budget comes on top of the client's limit for the answer.
                    dto.Thinking = new AnthropicThinking { Type = "enabled", BudgetTokens = granted };
                }
                else
                {
                    dto.MaxTokens = visible;
                    request.Dropped.Add("reasoning_effort");
                }
            }
        }

        if (dto.Thinking is not null || !settings.AcceptsSamplingParameters)
        {
            // Thinking requires the default sampling; newer API versions refuse the parameters outright.
            if (request.Temperature is not null || request.TopP is not null || request.TopK is not null)
            {
                request.Dropped.Add("temperature/top_p/top_k");
            }
        }
        else
        {
            // OpenAI's temperature runs to 2, Anthropic's to 1.
            dto.Temperature = request.Temperature is { } temperature ? Math.Min(temperature, 1.0) : null;
            dto.TopP = request.TopP;
            dto.TopK = request.TopK;
        }

        var stops = request.Stop.Where(s => !string.IsNullOrWhiteSpace(s)).ToList();
        dto.StopSequences = stops.Count > 0 ? stops : null;
        if (request.User is { Length: > 0 } user)
        {
            dto.Metadata = new AnthropicMetadata { UserId = user };
        }

        if (request.Seed is not null)
        {
            request.Dropped.Add("seed");
        }

        if (request.PresencePenalty is not null || request.FrequencyPenalty is not null)
        {
            request.Dropped.Add("presence_penalty/frequency_penalty");
        }

        if (request.N > 1)
        {
            request.Dropped.Add("n");
        }

        return dto;
    }

    public static byte[] Serialize(AnthropicRequest request) => JsonSerializer.SerializeToUtf8Bytes(request, AnthropicJsonContext.Default.AnthropicRequest);

    /// <summary>Thinking budget for an effort level: generous enough to help, bounded so a request cannot run away.</summary>
    private static int? Budget(ReasoningRequest reasoning) => reasoning.BudgetTokens ?? reasoning.Effort switch
    {
        "low" => 2048,
        "medium" => 8192,
        "high" => 24576,
        _ => null,
    };

    private static readonly JsonElement EmptySchema = JsonDocument.Parse("""{"type":"object","properties":{}}""").RootElement;

    private static List<AnthropicBlock> Blocks(ChatMessage message, ChatRequest request)
    {
        var blocks = new List<AnthropicBlock>(message.Parts.Count);
        foreach (var part in message.Parts)
        {
            switch (part)
            {
                case TextPart text:
                    AddText(blocks, text);
                    break;
                case ImagePart image:
                    blocks.Add(new AnthropicImageBlock { Source = Source(image.Url, image.MediaType, image.Base64), CacheControl = Cache(image.Cache) });
                    break;
                case DocumentPart document:
                    blocks.Add(new AnthropicDocumentBlock { Source = Source(document.Url, document.MediaType ?? "application/pdf", document.Base64), Title = document.Title, CacheControl = Cache(document.Cache) });
                    break;
                case ToolCallPart call when message.Role == ChatRole.Assistant:
                    blocks.Add(new AnthropicToolUseBlock { Id = ToolId(call.Id), Name = call.Name, Input = Arguments(call.ArgumentsJson), CacheControl = Cache(call.Cache) });
                    break;
                case ToolResultPart result:
                    var content = new List<AnthropicBlock>();
                    foreach (var inner in result.Content)
                    {
                        switch (inner)
                        {
                            case TextPart text:
                                AddText(content, text);
                                break;
                            case ImagePart image:
                                content.Add(new AnthropicImageBlock { Source = Source(image.Url, image.MediaType, image.Base64) });
                                break;
                        }
                    }

                    blocks.Add(new AnthropicToolResultBlock
                    {
                        ToolUseId = ToolId(result.ToolCallId),
                        Content = content.Count > 0 ? content : null,
                        IsError = result.IsError ? true : null,
                        CacheControl = Cache(result.Cache),
                    });
                    break;
                case ReasoningPart reasoning when message.Role == ChatRole.Assistant:
                    // Anthropic checks the signature of thinking sent back; reasoning from elsewhere has none and is left out.
                    if (reasoning.Signature is { Length: > 0 } signature && !signature.StartsWith(GatewaySignaturePrefix, StringComparison.Ordinal))
                    {
                        blocks.Add(new AnthropicThinkingBlock { Thinking = reasoning.Text, Signature = signature });
                    }

                    break;
                case RedactedReasoningPart redacted when message.Role == ChatRole.Assistant:
                    blocks.Add(new AnthropicRedactedThinkingBlock { Data = redacted.Data });
                    break;
            }
        }

        OrderToolResultsFirst(blocks);
        return blocks;
    }

    /// <summary>The prefix of signatures the gateway writes for reasoning that did not come from Anthropic.</summary>
    public const string GatewaySignaturePrefix = "modelgateway:";

    private static void AddText(List<AnthropicBlock> blocks, TextPart text)
    {
        // Anthropic refuses empty text blocks.
        if (text.Text.Length > 0)
        {
            blocks.Add(new AnthropicTextBlock { Text = text.Text, CacheControl = Cache(text.Cache) });
        }
    }

    // A user turn that answers tool calls must start with the results.
    private static void OrderToolResultsFirst(List<AnthropicBlock> blocks)
    {
        var firstOther = blocks.FindIndex(b => b is not AnthropicToolResultBlock);
        var lastResult = blocks.FindLastIndex(b => b is AnthropicToolResultBlock);
        if (firstOther >= 0 && lastResult > firstOther)
        {
            var ordered = blocks.Where(b => b is AnthropicToolResultBlock).Concat(blocks.Where(b => b is not AnthropicToolResultBlock)).ToList();
            blocks.Clear();
            blocks.AddRange(ordered);
        }
    }

    // An assistant turn last is a prefill; Anthropic refuses one that ends in whitespace.
    private static void TrimPrefill(List<AnthropicMessage> messages)
    {
        if (messages.Count == 0 || messages[^1].Role != "assistant" || messages[^1].Content is not [.., AnthropicTextBlock last])
        {
            return;
        }

        last.Text = last.Text.TrimEnd();
        if (last.Text.Length == 0)
        {
            messages[^1].Content.RemoveAt(messages[^1].Content.Count - 1);
            if (messages[^1].Content.Count == 0)
            {
                messages.RemoveAt(messages.Count - 1);
            }
        }
    }

    private static AnthropicSource Source(string? url, string? mediaType, string? base64)
        => base64 is not null
            ? new AnthropicSource { Type = "base64", MediaType = mediaType ?? "image/png", Data = base64 }
            : new AnthropicSource { Type = "url", Url = url };

    private static AnthropicCacheControl? Cache(CacheHint? hint) => hint is null ? null : new AnthropicCacheControl { Ttl = hint.Ttl };

    // Anthropic tool ids match ^[a-zA-Z0-9_-]+$; other clients' ids are made to fit, the same way on both sides of a round trip.
    private static string ToolId(string id)
    {
        if (id.Length == 0)
        {
            return "toolu_unknown";
        }

        Span<char> buffer = id.Length <= 256 ? stackalloc char[id.Length] : new char[id.Length];
        for (var i = 0; i < id.Length; i++)
        {
            var c = id[i];
            buffer[i] = char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_';
        }

        return new string(buffer);
    }

    private static JsonElement Arguments(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(string.IsNullOrWhiteSpace(json) ? "{}" : json);
            return document.RootElement.ValueKind == JsonValueKind.Object ? document.RootElement.Clone() : EmptySchemaLessObject;
        }
        catch (JsonException)
        {
            return EmptySchemaLessObject;
        }
    }

    private static readonly JsonElement EmptySchemaLessObject = JsonDocument.Parse("{}").RootElement;
}
