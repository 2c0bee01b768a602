using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Providers.Media;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Gemini;

/// <summary>
/// Writes a canonical request as a Gemini <c>GenerateContentRequest</c> (the Gemini API's and Vertex AI's),
/// and an embeddings request as a <c>BatchEmbedContentsRequest</c>. docs/providers.md has the mapping
/// table: what is kept, what is translated, what is dropped.
/// </summary>
internal static class GeminiRequestMapper
{
    /// <summary>Gemini takes at most this many stop sequences.</summary>
    public const int MaxStopSequences = 5;

    /// <summary>
    /// Google's documented stand-in for a thought signature the client could not keep: Gemini 3 refuses a
    /// replayed function call without one, and OpenAI clients have nowhere to keep Google's signatures.
    /// </summary>
    public const string SkipSignatureValidator = "skip_thought_signature_validator";

    /// <summary>Prefix of the signatures the gateway hands out for Gemini's thought signatures, so no other provider mistakes them for its own.</summary>
    public const string SignaturePrefix = "modelgateway:gemini:";

    public static GeminiRequest Map(ChatRequest request, Deployment deployment, IReadOnlyDictionary<string, FetchedMedia> media)
    {
        var dto = new GeminiRequest();
        var system = new List<GeminiPart>();
        foreach (var part in request.System)
        {
            AddText(system, part.Text);
        }

        // Tool results carry only the call's id; Gemini wants the function's name, which the assistant turn that made the call has.
        var callNames = new Dictionary<string, string>(StringComparer.Ordinal);
        var signsCalls = NeedsThoughtSignatures(deployment.UpstreamModel);
        foreach (var message in request.Messages)
        {
            if (message.Role == ChatRole.System)
            {
                // Gemini has one system instruction: later system turns join it, in order.
                foreach (var part in message.Parts.OfType<TextPart>())
                {
                    AddText(system, part.Text);
                }

                continue;
            }

            var role = message.Role == ChatRole.Assistant ? "model" : "user";
            var parts = message.Role == ChatRole.Assistant ? ModelParts(message, callNames, signsCalls) : UserParts(message, callNames, media);
            if (parts.Count == 0)
            {
                continue;
            }

            if (dto.Contents.Count > 0 && dto.Contents[^1].Role == role)
            {
                // A user turn after tool results (or two user turns) is one Gemini turn.
                dto.Contents[^1].Parts.AddRange(parts);
            }
            else
            {
                dto.Contents.Add(new GeminiContent { Role = role, Parts = parts });
            }
        }

        dto.SystemInstruction = system.Count > 0 ? new GeminiContent { Parts = system } : null;
        if (request.Tools.Count > 0)
        {
            dto.Tools = [new GeminiTool
            {
                FunctionDeclarations = [.. request.Tools.Select(tool => new GeminiFunctionDeclaration
                {
                    Name = tool.Name,
                    Description = tool.Description,
                    ParametersJsonSchema = tool.Parameters,
                })],
            }];
        }

        dto.ToolConfig = request.ToolChoice?.Kind switch
        {
            ToolChoiceKind.None => Calling("NONE"),
            ToolChoiceKind.Required => Calling("ANY"),
            ToolChoiceKind.Tool => Calling("ANY", request.ToolChoice.Name),
            ToolChoiceKind.Auto when dto.Tools is not null => Calling("AUTO"),
            _ => null,
        };

        if (request.ParallelToolCalls == false)
        {
            // Gemini decides alone how many calls to make at once.
            request.Dropped.Add("parallel_tool_calls");
        }

        var config = new GeminiGenerationConfig
        {
            // Gemini's temperature runs to 2, as OpenAI's does.
            Temperature = request.Temperature,
            TopP = request.TopP,
            TopK = request.TopK,
            MaxOutputTokens = request.MaxTokens,
            Seed = request.Seed,
            PresencePenalty = request.PresencePenalty,
            FrequencyPenalty = request.FrequencyPenalty,
        };

        var stops = request.Stop.Where(s => s.Length > 0).ToList();
        if (stops.Count > MaxStopSequences)
        {
            stops.RemoveRange(MaxStopSequences, stops.Count - MaxStopSequences);
            request.Dropped.Add("stop");
        }

        config.StopSequences = stops.Count > 0 ? stops : null;
        if (request.Format is { Kind: ResponseFormatKind.JsonSchema or ResponseFormatKind.JsonObject } format)
        {
            config.ResponseMimeType = "application/json";
            config.ResponseJsonSchema = format.Kind == ResponseFormatKind.JsonSchema ? format.Schema : null;
        }

        if (request.Reasoning is { } reasoning && Budget(reasoning) is { } budget)
        {
            // As OpenAI's max_completion_tokens does, Gemini's maxOutputTokens counts thinking too: the budget comes on
            // top of the client's limit for the answer, within what the deployment allows.
            config.ThinkingConfig = new GeminiThinkingConfig { IncludeThoughts = budget > 0 ? true : null, ThinkingBudget = budget };
            if (config.MaxOutputTokens is { } visible && budget > 0)
            {
                config.MaxOutputTokens = (int)Math.Min((long)visible + budget, deployment.MaxOutputTokens ?? int.MaxValue);
            }
        }

        if (request.N > 1)
        {
            request.Dropped.Add("n");
        }

        if (request.User is not null)
        {
            request.Dropped.Add("user");
        }

        dto.GenerationConfig = config;
        return dto;
    }

    public static byte[] Serialize(GeminiRequest request) => JsonSerializer.SerializeToUtf8Bytes(request, GeminiJsonContext.Default.GeminiRequest);

    /// <summary>An OpenAI embeddings request as <c>batchEmbedContents</c>: one request per input text.</summary>
    public static byte[] MapEmbeddings(EmbeddingRequest request, string modelPath)
    {
        var batch = new GeminiBatchEmbedRequest();
        foreach (var input in request.Inputs)
        {
            batch.Requests.Add(new GeminiEmbedRequest
            {
                Model = modelPath,
                Content = new GeminiContent { Parts = [new GeminiPart { Text = input }] },
                OutputDimensionality = request.Dimensions,
            });
        }

        return JsonSerializer.SerializeToUtf8Bytes(batch, GeminiJsonContext.Default.GeminiBatchEmbedRequest);
    }

    /// <summary>
    /// The client URLs of a request that the provider cannot take: images and documents the gateway would have
    /// to fetch, except those <paramref name="readsItself"/> says the provider reads on its own.
    /// </summary>
    public static IEnumerable<(string Url, MediaKind Kind)> UrlsToFetch(ChatRequest request, Func<string, bool> readsItself)
    {
        foreach (var message in request.Messages)
        {
            foreach (var part in message.Parts)
            {
                foreach (var (url, kind) in Urls(part, readsItself))
                {
                    yield return (url, kind);
                }
            }
        }
    }

    private static IEnumerable<(string Url, MediaKind Kind)> Urls(ContentPart part, Func<string, bool> readsItself)
    {
        switch (part)
        {
            case ImagePart { Base64: null, Url: { } url } when !readsItself(url):
                yield return (url, MediaKind.Image);
                break;
            case DocumentPart { Base64: null, Url: { } url } when !readsItself(url):
                yield return (url, MediaKind.Document);
                break;
            case ToolResultPart result:
                foreach (var inner in result.Content)
                {
                    foreach (var found in Urls(inner, readsItself))
                    {
                        yield return found;
                    }
                }

                break;
        }
    }

    /// <summary>A Gemini Files API URI: Google reads it itself, the gateway connects nowhere.</summary>
    public static bool IsGeminiFile(string url) => url.StartsWith("https://generativelanguage.googleapis.com/", StringComparison.Ordinal);

    /// <summary>A Cloud Storage object, which Vertex AI reads itself.</summary>
    public static bool IsVertexFile(string url) => url.StartsWith("gs://", StringComparison.Ordinal);

    /// <summary>Gemini 3 and later refuse replayed function calls without a thought signature; 1.x and 2.x models have none to check.</summary>
    public static bool NeedsThoughtSignatures(string model)
    {
        var name = model.AsSpan(model.LastIndexOf('/') + 1);
        return !(name.StartsWith("gemini-1", StringComparison.Ordinal) || name.StartsWith("gemini-2", StringComparison.Ordinal)
                 || name.StartsWith("gemma", StringComparison.Ordinal) || name.StartsWith("learnlm", StringComparison.Ordinal));
    }

    /// <summary>Thinking budget for an effort level: generous enough to help, bounded so a request cannot run away.</summary>
    private static int? Budget(ReasoningRequest reasoning) => reasoning.BudgetTokens ?? reasoning.Effort switch
    {
        "none" => 0,
        "minimal" => 512,
        "low" => 1024,
        "medium" => 8192,
        "high" => 24576,
        _ => null,
    };

    private static GeminiToolConfig Calling(string mode, string? name = null) => new()
    {
        FunctionCallingConfig = new GeminiFunctionCallingConfig { Mode = mode, AllowedFunctionNames = name is null ? null : [name] },
    };

    private static List<GeminiPart> ModelParts(ChatMessage message, Dictionary<string, string> callNames, bool signsCalls)
    {
        var parts = new List<GeminiPart>(message.Parts.Count);
        string? signature = null;
        foreach (var part in message.Parts)
        {
            switch (part)
            {
                case TextPart text:
                    AddText(parts, text.Text);
                    break;
                case ToolCallPart call:
                    callNames[call.Id] = call.Name;
                    parts.Add(new GeminiPart { FunctionCall = new GeminiFunctionCall { Name = call.Name, Args = Arguments(call.ArgumentsJson) } });
                    break;
                case ReasoningPart { Signature: { } own } when own.StartsWith(SignaturePrefix, StringComparison.Ordinal):
                    // Thought text is not sent back (Gemini keeps its thinking in the signature); the signature is.
                    signature = own[SignaturePrefix.Length..];
                    break;
            }
        }

        // The signature rides on the first function call (or, without calls, the first part) of the turn, where Gemini put it.
        var first = parts.FindIndex(p => p.FunctionCall is not null);
        if (signature is not null && parts.Count > 0)
        {
            parts[first >= 0 ? first : 0].ThoughtSignature = signature;
        }
        else if (signsCalls && first >= 0)
        {
            parts[first].ThoughtSignature = SkipSignatureValidator;
        }

        return parts;
    }

    private static List<GeminiPart> UserParts(ChatMessage message, Dictionary<string, string> callNames, IReadOnlyDictionary<string, FetchedMedia> media)
    {
        var parts = new List<GeminiPart>(message.Parts.Count);
        var trailing = new List<GeminiPart>();
        foreach (var part in message.Parts)
        {
            switch (part)
            {
                case ToolResultPart result:
                    var output = string.Concat(result.Content.OfType<TextPart>().Select(t => t.Text));
                    parts.Add(new GeminiPart
                    {
                        FunctionResponse = new GeminiFunctionResponse
                        {
                            Name = callNames.TryGetValue(result.ToolCallId, out var name) ? name : result.ToolCallId,
                            Response = ResultObject(output, result.IsError),
                        },
                    });

                    // Images a tool returned follow the responses as ordinary parts.
                    foreach (var inner in result.Content)
                    {
                        if (MediaPart(inner, media) is { } attached)
                        {
                            trailing.Add(attached);
                        }
                    }

                    break;
                case TextPart text:
                    AddText(parts, text.Text);
                    break;
                default:
                    if (MediaPart(part, media) is { } inline)
                    {
                        parts.Add(inline);
                    }

                    break;
            }
        }

        parts.AddRange(trailing);
        return parts;
    }

    private static GeminiPart? MediaPart(ContentPart part, IReadOnlyDictionary<string, FetchedMedia> media)
    {
        var (url, mediaType, base64, fallbackType) = part switch
        {
            ImagePart image => (image.Url, image.MediaType, image.Base64, "image/png"),
            DocumentPart document => (document.Url, document.MediaType, document.Base64, "application/pdf"),
            _ => (null, null, null, null),
        };
        if (base64 is not null)
        {
            return new GeminiPart { InlineData = new GeminiBlob { MimeType = mediaType ?? fallbackType!, Data = base64 } };
        }

        if (url is null)
        {
            return null;
        }

        if (media.TryGetValue(url, out var fetched))
        {
            return new GeminiPart { InlineData = new GeminiBlob { MimeType = fetched.MediaType, Data = Convert.ToBase64String(fetched.Bytes) } };
        }

        // Only URIs Google reads itself reach here unfetched (UrlsToFetch skipped them).
        return new GeminiPart { FileData = new GeminiFileData { MimeType = mediaType ?? GuessType(url, fallbackType!), FileUri = url } };
    }

    private static string GuessType(string url, string fallback)
    {
        var path = url.AsSpan();
        var query = path.IndexOfAny('?', '#');
        if (query >= 0)
        {
            path = path[..query];
        }

        return Path.GetExtension(path).ToString().ToLowerInvariant() switch
        {
            ".png" => "image/png",
            ".jpg" or ".jpeg" => "image/jpeg",
            ".webp" => "image/webp",
            ".gif" => "image/gif",
            ".pdf" => "application/pdf",
            _ => fallback,
        };
    }

    private static void AddText(List<GeminiPart> parts, string text)
    {
        // Gemini refuses empty text parts.
        if (text.Length > 0)
        {
            parts.Add(new GeminiPart { Text = text });
        }
    }

    // A function response is a JSON object: a result that is one is kept as it is, anything else goes under "output" (or "error").
    private static JsonElement ResultObject(string text, bool isError)
    {
        if (!isError && text.Length > 0 && text[0] == '{')
        {
            try
            {
                using var parsed = JsonDocument.Parse(text);
                if (parsed.RootElement.ValueKind == JsonValueKind.Object)
                {
                    return parsed.RootElement.Clone();
                }
            }
            catch (JsonException)
            {
                // Not JSON after all: wrapped below.
            }
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>(text.Length + 16);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString(isError ? "error"u8 : "output"u8, text);
            json.WriteEndObject();
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
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

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement;
}
