using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Gemini;

/// <summary>
/// The Gemini API (Google AI Studio): <c>POST /v1beta/models/{model}:{method}</c> for <c>generateContent</c>,
/// <c>streamGenerateContent</c> (SSE with <c>?alt=sse</c>), <c>countTokens</c>, <c>embedContent</c> and
/// <c>batchEmbedContents</c>, with the key in <c>x-goog-api-key</c> or <c>?key=</c>.
/// </summary>
internal sealed class GeminiWire : ProviderWire
{
    public const string GenerateContent = "generateContent";
    public const string StreamGenerateContent = "streamGenerateContent";
    public const string CountTokens = "countTokens";
    public const string EmbedContent = "embedContent";
    public const string BatchEmbedContents = "batchEmbedContents";

    private const string MissingKey =
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";

    private static readonly string[] Prefixes = ["/v1beta/models/", "/v1/models/", "/v1alpha/models/"];

    private readonly WireServices _services;

    public GeminiWire(WireServices services) => _services = services;

    public override bool TryMatch(HttpRequest request, out WireRoute route)
    {
        route = default;
        var path = request.Path.Value ?? string.Empty;
        if (!HttpMethods.IsPost(request.Method))
        {
            return false;
        }

        foreach (var prefix in Prefixes)
        {
            if (path.StartsWith(prefix, StringComparison.Ordinal) && SplitMethod(path[prefix.Length..]) is var (model, method))
            {
                route = new WireRoute(UpstreamWire.Gemini, method, model);
                return true;
            }
        }

        return false;
    }

    public override async Task HandleAsync(WireCall call)
    {
        if (_services.Options.ExpectedApiKey is { } expected)
        {
            var request = call.Context.Request;
            var key = request.Headers["x-goog-api-key"].ToString();
            if (key.Length == 0)
            {
                key = request.Query["key"].ToString();
            }

            if (key.Length == 0)
            {
                await RefuseAsync(call, GoogleErrors.Create(403, MissingKey)).ConfigureAwait(false);
                return;
            }

            if (!string.Equals(key, expected, StringComparison.Ordinal))
            {
                await RefuseAsync(call, GoogleErrors.Create(400, "API key not valid. Please pass a valid API key.", details: ApiKeyInvalid)).ConfigureAwait(false);
                return;
            }
        }

        await RespondAsync(_services, call, vertex: false).ConfigureAwait(false);
    }

    /// <summary>Answers a Gemini-wire request whose caller is authenticated; shared with Gemini models on Vertex AI.</summary>
    public static async Task RespondAsync(WireServices services, WireCall call, bool vertex)
    {
        var model = call.Route.PathModel!;
        var operation = call.Route.Operation;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(call.Body, JsonFormat.DocumentOptions);
        }
        catch (JsonException ex)
        {
            await RefuseAsync(call, GoogleErrors.Create(400, "Invalid JSON payload received. " + ex.Message)).ConfigureAwait(false);
            return;
        }

        using (document)
        {
            var root = document.RootElement;
            IWireAnswer answer;
            UpstreamBehavior behavior;
            var stream = false;
            var now = services.Time.GetUtcNow();
            switch (operation)
            {
                case GenerateContent or StreamGenerateContent:
                    stream = operation == StreamGenerateContent;
                    var parsed = GeminiRequest.Parse(root, model, stream);
                    if (parsed.Facts is not { } facts)
                    {
                        await RefuseAsync(call, GoogleErrors.Create(400, parsed.Error!)).ConfigureAwait(false);
                        return;
                    }

                    behavior = services.Take(model);
                    var sse = string.Equals(call.Context.Request.Query["alt"].ToString(), "sse", StringComparison.Ordinal);
                    answer = new GeminiAnswer(behavior, Reply.Build(behavior, facts, static () => string.Empty), model, vertex, sse, now);
                    break;
                case CountTokens:
                    behavior = services.Take(model);
                    answer = new FixedAnswer(CountBody(behavior.PromptTokens ?? TokenEstimator.FromCharacters(JsonBytes.TextCharacters(root))), model, vertex);
                    break;
                case EmbedContent or BatchEmbedContents when !vertex:
                    behavior = services.Take(model);
                    answer = new FixedAnswer(EmbeddingsBody(root, operation == BatchEmbedContents, services.Options.EmbeddingDimensions), model, vertex);
                    break;
                default:
                    var where = vertex ? "Vertex AI" : "the Gemini API";
                    await RefuseAsync(call, GoogleErrors.Create(404, $"Method '{operation}' is not served by the fake for {where}.")).ConfigureAwait(false);
                    return;
            }

            await services.Responder.RespondAsync(call.Context, behavior, answer, stream, call.State, call.CancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Splits <c>{model}:{method}</c>; null when the path has no method.</summary>
    public static (string Model, string Method)? SplitMethod(string rest)
    {
        var colon = rest.LastIndexOf(':');
        if (colon <= 0 || colon == rest.Length - 1 || rest.AsSpan(0, colon).Contains('/'))
        {
            return null;
        }

        return (Uri.UnescapeDataString(rest[..colon]), rest[(colon + 1)..]);
    }

    private static Task RefuseAsync(WireCall call, WireError error) =>
        WireResponder.WriteErrorAsync(call.Context, error, null, call.State, call.CancellationToken);

    private static void ApiKeyInvalid(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("@type"u8, "type.googleapis.com/google.rpc.ErrorInfo"u8);
        writer.WriteString("reason"u8, "API_KEY_INVALID"u8);
        writer.WriteString("domain"u8, "googleapis.com"u8);
        writer.WriteStartObject("metadata"u8);
        writer.WriteString("service"u8, "generativelanguage.googleapis.com"u8);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    private static byte[] CountBody(int tokens) => JsonBytes.Write(tokens, static (writer, tokens) =>
    {
        writer.WriteStartObject();
        writer.WriteNumber("totalTokens"u8, tokens);
        writer.WriteStartArray("promptTokensDetails"u8);
        writer.WriteStartObject();
        writer.WriteString("modality"u8, "TEXT"u8);
        writer.WriteNumber("tokenCount"u8, tokens);
        writer.WriteEndObject();
        writer.WriteEndArray();
        writer.WriteEndObject();
    });

    /// <summary><c>{"embeddings":[{"values":[..]}]}</c> (batch) or <c>{"embedding":{"values":[..]}}</c>, deterministic unit vectors.</summary>
    private static byte[] EmbeddingsBody(JsonElement root, bool batch, int defaultDimensions)
    {
        var inputs = new List<(string Text, int Dimensions)>();
        void Add(JsonElement request)
        {
            var text = JsonBytes.TryObject(request, "content"u8, out var content) && JsonBytes.TryArray(content, "parts"u8, out var parts)
                ? string.Concat(parts.EnumerateArray().Select(p => JsonBytes.String(p, "text"u8)))
                : string.Empty;
            var dimensions = request.ValueKind == JsonValueKind.Object
                && request.TryGetProperty("outputDimensionality"u8, out var d) && d.TryGetInt32(out var value) && value > 0
                    ? value
                    : defaultDimensions;
            inputs.Add((text, dimensions));
        }

        if (batch && JsonBytes.TryArray(root, "requests"u8, out var requests))
        {
            foreach (var request in requests.EnumerateArray())
            {
                Add(request);
            }
        }
        else
        {
            Add(root);
        }

        return JsonBytes.Write((inputs, batch), static (writer, state) =>
        {
            writer.WriteStartObject();
            if (state.batch)
            {
                writer.WriteStartArray("embeddings"u8);
            }

            foreach (var (text, dimensions) in state.inputs)
            {
                if (state.batch)
                {
                    writer.WriteStartObject();
                }
                else
                {
                    writer.WriteStartObject("embedding"u8);
                }

                writer.WriteStartArray("values"u8);
                foreach (var value in EmbeddingFormatter.VectorFor(text, dimensions))
                {
                    writer.WriteNumberValue(value);
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            if (state.batch)
            {
                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        });
    }

    /// <summary>A precomputed success body (counts, embeddings) with Google's errors for behaviours.</summary>
    private sealed class FixedAnswer(byte[] body, string model, bool vertex) : IWireAnswer
    {
        public byte[] Body() => body;

        public StreamPlan Stream() => throw new NotSupportedException();

        public WireError Error(UpstreamBehavior behavior) => GoogleErrors.ForBehavior(behavior, model, vertex);
    }
}
