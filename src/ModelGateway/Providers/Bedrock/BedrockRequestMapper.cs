using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Providers.Media;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Bedrock;

/// <summary>A client URL the mapped request still needs as bytes; the adapter fetches it before sending.</summary>
internal sealed record PendingMedia(string Url, MediaKind Kind, BedrockContentBlock Block);

/// <summary>
/// Writes a canonical request as a Bedrock Converse request. docs/providers.md has the mapping table:
/// what is kept, what is translated, what is dropped.
/// </summary>
internal static class BedrockRequestMapper
{
    /// <summary>The forced tool that carries structured output: Converse has no <c>response_format</c>.</summary>
    public const string JsonToolName = "json_response";

    /// <summary>Smallest thinking budget Claude accepts.</summary>
    public const int MinimumThinkingBudget = 1024;

    private static readonly JsonElement EmptySchema = JsonDocument.Parse("""{"type":"object","properties":{}}""").RootElement;
    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement;

    /// <summary>Maps the request; URL images and documents are left in <paramref name="pending"/> for the fetcher.</summary>
    public static ConverseRequest Map(ChatRequest request, Deployment deployment, out bool jsonTool, out List<PendingMedia> pending)
    {
        jsonTool = false;
        pending = [];
        var claude = IsClaude(deployment.UpstreamModel);
        var dto = new ConverseRequest();
        var context = new MappingContext(pending);

        var system = new List<BedrockContentBlock>();
        foreach (var part in request.System)
        {
            AddText(system, part);
        }

        var messages = dto.Messages;
        var toolNamesUsed = new List<string>();
        foreach (var message in request.Messages)
        {
            if (message.Role == ChatRole.System)
            {
                // Converse has one system prompt: later system turns join it, in order.
                foreach (var part in message.Parts.OfType<TextPart>())
                {
                    AddText(system, part);
                }

                continue;
            }

            var role = message.Role == ChatRole.Assistant ? "assistant" : "user";
            var blocks = Blocks(message, context, toolNamesUsed);
            if (blocks.Count == 0)
            {
                continue;
            }

            if (messages.Count > 0 && messages[^1].Role == role)
            {
                // Converse's turns alternate: consecutive turns of one role become one.
                messages[^1].Content.AddRange(blocks);
                OrderToolResultsFirst(messages[^1].Content);
            }
            else
            {
                messages.Add(new BedrockMessage { Role = role, Content = blocks });
            }
        }

        TrimPrefill(messages);
        dto.System = system.Count > 0 ? system : null;

        var inference = new BedrockInferenceConfig { MaxTokens = request.MaxTokens ?? deployment.DefaultMaxTokens };
        dto.InferenceConfig = inference;
        MapTools(request, dto, toolNamesUsed);

        if (request.Format is { Kind: ResponseFormatKind.JsonSchema or ResponseFormatKind.JsonObject } format)
        {
            // Structured output as a forced tool call whose input is the answer; the decoder turns it back into text.
            jsonTool = true;
            dto.ToolConfig ??= new BedrockToolConfig();
            dto.ToolConfig.Tools.Add(new BedrockTool
            {
                ToolSpec = new BedrockToolSpec
                {
                    Name = JsonToolName,
                    Description = "Respond with the answer as this tool's input" + (format.Name is null ? "." : $" ({format.Name})."),
                    InputSchema = new BedrockInputSchema { Json = format.Schema ?? EmptySchema },
                },
            });
            dto.ToolConfig.ToolChoice = new BedrockToolChoice { Tool = new BedrockNamedTool { Name = JsonToolName } };
        }

        var thinking = false;
        if (request.Reasoning is { } reasoning && Budget(reasoning) is { } budget)
        {
            if (!claude)
            {
                // Converse has no common reasoning field; only Claude's is known to the gateway.
                request.Dropped.Add("reasoning_effort");
            }
            else if (dto.ToolConfig?.ToolChoice is { Any: not null } or { Tool: not null })
            {
                // Claude refuses thinking while a tool is forced; the forced tool is the client's harder requirement.
                request.Dropped.Add("reasoning_effort");
            }
            else
            {
                var visible = inference.MaxTokens.Value;
                var limit = deployment.MaxOutputTokens ?? int.MaxValue;
                inference.MaxTokens = (int)Math.Min((long)visible + budget, limit);
                var granted = Math.Min(budget, inference.MaxTokens.Value - 1);
                if (granted >= MinimumThinkingBudget)
                {
                    // maxTokens counts thinking too: the budget comes on top of the client's limit for the answer.
                    thinking = true;
                    dto.AdditionalModelRequestFields = new BedrockAdditionalFields { Thinking = new BedrockThinking { BudgetTokens = granted } };
                }
                else
                {
                    inference.MaxTokens = visible;
                    request.Dropped.Add("reasoning_effort");
                }
            }
        }

        if (thinking)
        {
            // Thinking requires the default sampling.
            if (request.Temperature is not null || request.TopP is not null || request.TopK is not null)
            {
                request.Dropped.Add("temperature/top_p/top_k");
            }
        }
        else
        {
            // OpenAI's temperature runs to 2; Claude's to 1.
            inference.Temperature = request.Temperature is { } temperature && claude ? Math.Min(temperature, 1.0) : request.Temperature;
            inference.TopP = request.TopP;
            if (request.TopK is { } topK)
            {
                if (claude)
                {
                    (dto.AdditionalModelRequestFields ??= new BedrockAdditionalFields()).TopK = topK;
                }
                else
                {
                    request.Dropped.Add("top_k");
                }
            }
        }

        var stops = request.Stop.Where(s => !string.IsNullOrWhiteSpace(s)).ToList();
        inference.StopSequences = stops.Count > 0 ? stops : null;

        if (request.User is not null)
        {
            request.Dropped.Add("user");
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

    public static byte[] Serialize(ConverseRequest request) => JsonSerializer.SerializeToUtf8Bytes(request, BedrockJsonContext.Default.ConverseRequest);

    /// <summary>Claude on Bedrock: a foundation model id, an inference profile (<c>us.anthropic.claude…</c>) or an ARN of either.</summary>
    public static bool IsClaude(string modelId) => modelId.Contains("anthropic.claude", StringComparison.OrdinalIgnoreCase);

    /// <summary>Fills a fetched URL's bytes into the block that waits for them.</summary>
    public static void Fill(PendingMedia pending, FetchedMedia media)
    {
        var base64 = Convert.ToBase64String(media.Bytes);
        if (pending.Block.Image is { } image)
        {
            image.Format = ImageFormat(media.MediaType);
            image.Source.Bytes = base64;
        }
        else if (pending.Block.Document is { } document)
        {
            document.Format = DocumentFormat(media.MediaType);
            document.Source.Bytes = base64;
        }
    }

    private static void MapTools(ChatRequest request, ConverseRequest dto, List<string> toolNamesUsed)
    {
        var tools = new List<BedrockTool>();
        foreach (var tool in request.Tools)
        {
            tools.Add(new BedrockTool
            {
                ToolSpec = new BedrockToolSpec
                {
                    Name = tool.Name,
                    Description = string.IsNullOrEmpty(tool.Description) ? null : tool.Description,
                    InputSchema = new BedrockInputSchema { Json = tool.Parameters ?? EmptySchema },
                },
            });
            if (tool.Cache is not null)
            {
                tools.Add(new BedrockTool { CachePoint = BedrockCachePoint.Default });
            }
        }

        var choice = request.ToolChoice;
        if (choice?.Kind == ToolChoiceKind.None && toolNamesUsed.Count == 0)
        {
            // Converse has no "none": offering no tools is the same thing.
            return;
        }

        if (tools.Count == 0 && toolNamesUsed.Count > 0)
        {
            // Converse refuses toolUse and toolResult blocks without a toolConfig: declare the tools the history used.
            foreach (var name in toolNamesUsed.Distinct(StringComparer.Ordinal))
            {
                tools.Add(new BedrockTool { ToolSpec = new BedrockToolSpec { Name = name, InputSchema = new BedrockInputSchema { Json = EmptySchema } } });
            }
        }

        if (tools.Count == 0)
        {
            return;
        }

        dto.ToolConfig = new BedrockToolConfig { Tools = tools };
        switch (choice?.Kind)
        {
            case ToolChoiceKind.Required:
                dto.ToolConfig.ToolChoice = new BedrockToolChoice { Any = new BedrockEmpty() };
                break;
            case ToolChoiceKind.Tool:
                dto.ToolConfig.ToolChoice = new BedrockToolChoice { Tool = new BedrockNamedTool { Name = choice.Name ?? string.Empty } };
                break;
            case ToolChoiceKind.Auto:
                dto.ToolConfig.ToolChoice = new BedrockToolChoice { Auto = new BedrockEmpty() };
                break;
            case ToolChoiceKind.None:
                // The history holds tool calls, so the tools must stay declared; the model may call one.
                request.Dropped.Add("tool_choice");
                break;
        }

        if (request.ParallelToolCalls == false)
        {
            request.Dropped.Add("parallel_tool_calls");
        }
    }

    /// <summary>Thinking budget for an effort level: generous enough to help, bounded so a request cannot run away.</summary>
    private static int? Budget(ReasoningRequest reasoning) => reasoning.BudgetTokens ?? reasoning.Effort switch
    {
        "low" => 2048,
        "medium" => 8192,
        "high" => 24576,
        _ => null,
    };

    private sealed class MappingContext(List<PendingMedia> pending)
    {
        public List<PendingMedia> Pending { get; } = pending;

        public int Documents { get; set; }
    }

    private static List<BedrockContentBlock> Blocks(ChatMessage message, MappingContext context, List<string> toolNamesUsed)
    {
        var blocks = new List<BedrockContentBlock>(message.Parts.Count);
        foreach (var part in message.Parts)
        {
            switch (part)
            {
                case TextPart text:
                    AddText(blocks, text);
                    continue;
                case ImagePart image:
                    blocks.Add(Image(image, context));
                    break;
                case DocumentPart document:
                    blocks.Add(Document(document, context));
                    break;
                case ToolCallPart call when message.Role == ChatRole.Assistant:
                    toolNamesUsed.Add(call.Name);
                    blocks.Add(new BedrockContentBlock { ToolUse = new BedrockToolUse { ToolUseId = ToolId(call.Id), Name = call.Name, Input = Arguments(call.ArgumentsJson) } });
                    break;
                case ToolResultPart result:
                    blocks.Add(new BedrockContentBlock { ToolResult = ToolResult(result, context) });
                    break;
                case ReasoningPart reasoning when message.Role == ChatRole.Assistant:
                    // Claude checks the signature of reasoning sent back; reasoning from elsewhere has none and is left out.
                    if (reasoning.Signature is { Length: > 0 } signature && !signature.StartsWith(Anthropic.AnthropicRequestMapper.GatewaySignaturePrefix, StringComparison.Ordinal))
                    {
                        blocks.Add(new BedrockContentBlock { ReasoningContent = new BedrockReasoningContent { ReasoningText = new BedrockReasoningText { Text = reasoning.Text, Signature = signature } } });
                    }

                    continue;
                case RedactedReasoningPart redacted when message.Role == ChatRole.Assistant:
                    blocks.Add(new BedrockContentBlock { ReasoningContent = new BedrockReasoningContent { RedactedContent = redacted.Data } });
                    continue;
                default:
                    continue;
            }

            AddCachePoint(blocks, part.Cache);
        }

        OrderToolResultsFirst(blocks);
        return blocks;
    }

    private static BedrockToolResult ToolResult(ToolResultPart result, MappingContext context)
    {
        var content = new List<BedrockContentBlock>();
        foreach (var inner in result.Content)
        {
            switch (inner)
            {
                case TextPart text:
                    AddText(content, text, cache: false);
                    break;
                case ImagePart image:
                    content.Add(Image(image, context));
                    break;
                case DocumentPart document:
                    content.Add(Document(document, context));
                    break;
            }
        }

        if (content.Count == 0)
        {
            // Converse refuses an empty result; an empty answer from a tool is still an answer.
            content.Add(new BedrockContentBlock { Json = EmptyObject });
        }

        return new BedrockToolResult { ToolUseId = ToolId(result.ToolCallId), Content = content, Status = result.IsError ? "error" : null };
    }

    private static BedrockContentBlock Image(ImagePart image, MappingContext context)
    {
        var block = new BedrockContentBlock { Image = new BedrockImage { Format = ImageFormat(image.MediaType), Source = new BedrockSource { Bytes = image.Base64 } } };
        if (image.Base64 is null && image.Url is { } url)
        {
            // Converse takes bytes (or S3 locations) only: the gateway's media fetcher decides whether to fetch.
            context.Pending.Add(new PendingMedia(url, MediaKind.Image, block));
        }

        return block;
    }

    private static BedrockContentBlock Document(DocumentPart document, MappingContext context)
    {
        context.Documents++;
        var block = new BedrockContentBlock
        {
            Document = new BedrockDocument
            {
                Format = DocumentFormat(document.MediaType ?? "application/pdf"),
                Name = DocumentName(document.Title, context.Documents),
                Source = new BedrockSource { Bytes = document.Base64 },
            },
        };
        if (document.Base64 is null && document.Url is { } url)
        {
            context.Pending.Add(new PendingMedia(url, MediaKind.Document, block));
        }

        return block;
    }

    private static void AddText(List<BedrockContentBlock> blocks, TextPart text, bool cache = true)
    {
        // Converse refuses blank text blocks.
        if (!string.IsNullOrWhiteSpace(text.Text))
        {
            blocks.Add(new BedrockContentBlock { Text = text.Text });
        }

        if (cache)
        {
            AddCachePoint(blocks, text.Cache);
        }
    }

    // A client's Anthropic-style cache_control marks the end of a cacheable prefix; Converse marks it with a block after it.
    private static void AddCachePoint(List<BedrockContentBlock> blocks, CacheHint? hint)
    {
        if (hint is not null && blocks.Count > 0 && blocks[^1].CachePoint is null)
        {
            blocks.Add(new BedrockContentBlock { CachePoint = BedrockCachePoint.Default });
        }
    }

    private static string ImageFormat(string? mediaType) => mediaType?.ToLowerInvariant() switch
    {
        "image/jpeg" or "image/jpg" or "image/pjpeg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/png" or null => "png",

        // Bedrock refuses other formats with its own ValidationException, which reaches the client as a 400.
        var other => other.StartsWith("image/", StringComparison.Ordinal) ? other[6..] : other,
    };

    private static string DocumentFormat(string mediaType) => mediaType.ToLowerInvariant() switch
    {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "text/plain" => "txt",
        "text/markdown" => "md",
        "text/html" => "html",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        var other => other[(other.IndexOf('/', StringComparison.Ordinal) + 1)..],
    };

    // Bedrock takes letters, digits, single spaces, hyphens, parentheses and square brackets in a document name.
    private static string DocumentName(string? title, int number)
    {
        if (title is { Length: > 0 })
        {
            var cleaned = new System.Text.StringBuilder(Math.Min(title.Length, 200));
            foreach (var c in title)
            {
                if (cleaned.Length == 200)
                {
                    break;
                }

                var keep = char.IsAsciiLetterOrDigit(c) || c is '-' or '(' or ')' or '[' or ']' ? c : ' ';
                if (keep != ' ' || (cleaned.Length > 0 && cleaned[^1] != ' '))
                {
                    cleaned.Append(keep);
                }
            }

            var name = cleaned.ToString().Trim();
            if (name.Length > 0)
            {
                return name;
            }
        }

        return "document-" + number.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    // A user turn that answers tool calls must start with the results (Claude's rule, which Converse passes on).
    private static void OrderToolResultsFirst(List<BedrockContentBlock> blocks)
    {
        var firstOther = blocks.FindIndex(b => b.ToolResult is null);
        var lastResult = blocks.FindLastIndex(b => b.ToolResult is not null);
        if (firstOther >= 0 && lastResult > firstOther)
        {
            var ordered = blocks.Where(b => b.ToolResult is not null).Concat(blocks.Where(b => b.ToolResult is null)).ToList();
            blocks.Clear();
            blocks.AddRange(ordered);
        }
    }

    // An assistant turn last is a prefill; Claude refuses one that ends in whitespace.
    private static void TrimPrefill(List<BedrockMessage> messages)
    {
        if (messages.Count == 0 || messages[^1].Role != "assistant" || messages[^1].Content is not [.., { Text: { } text } last])
        {
            return;
        }

        last.Text = text.TrimEnd();
        if (last.Text.Length == 0)
        {
            messages[^1].Content.RemoveAt(messages[^1].Content.Count - 1);
            if (messages[^1].Content.Count == 0)
            {
                messages.RemoveAt(messages.Count - 1);
            }
        }
    }

    // Tool use ids match ^[a-zA-Z0-9_-]+$; other clients' ids are made to fit, the same way on both sides of a round trip.
    private static string ToolId(string id)
    {
        if (id.Length == 0)
        {
            return "tooluse_unknown";
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
            return document.RootElement.ValueKind == JsonValueKind.Object ? document.RootElement.Clone() : EmptyObject;
        }
        catch (JsonException)
        {
            return EmptyObject;
        }
    }
}
