using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Anthropic;
using ModelGateway.FakeUpstream.Internal.Bedrock;
using ModelGateway.FakeUpstream.Internal.Gemini;
using ModelGateway.FakeUpstream.Internal.Vertex;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>
/// The fake's whole request pipeline: read the body, record it, route, authenticate, validate,
/// choose a behaviour and hand over to <see cref="ResponseWriter"/>.
/// </summary>
internal sealed class RequestHandler
{
    private const int MaxCachedTemplates = 1024;
    private const string DefaultModel = "fake-model";

    private readonly FakeUpstreamOptions _options;
    private readonly BehaviorRegistry _behaviors;
    private readonly RequestRecorder _recorder;
    private readonly TimeProvider _time;
    private readonly ResponseWriter _writer;
    private readonly CancellationToken _shutdown;
    private readonly ConcurrentDictionary<TemplateKey, TemplateEntry> _templates = new();
    private readonly ProviderWire[] _wires;

    public RequestHandler(
        FakeUpstreamOptions options,
        BehaviorRegistry behaviors,
        RequestRecorder recorder,
        TimeProvider time,
        CancellationToken shutdown)
    {
        _options = options;
        _behaviors = behaviors;
        _recorder = recorder;
        _time = time;
        _writer = new ResponseWriter(time);
        _shutdown = shutdown;
        Slots = options.Slots is { } slots ? new SlotGate(slots) : null;
        var services = new WireServices(options, behaviors, new WireResponder(time), time);
        _wires = [new AnthropicWire(services), new GeminiWire(services), new VertexWire(services), new BedrockWire(services), new Responses.ResponsesWire(services), new Responses.OpenAIExtrasWire(services)];
    }

    /// <summary>The queueing capacity (<see cref="FakeUpstreamOptions.Slots"/>), or null when unlimited.</summary>
    public SlotGate? Slots { get; }

    public Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        if (Slots is { } gate)
        {
            if (HttpMethods.IsGet(request.Method) && request.Path.Equals("/metrics", StringComparison.Ordinal))
            {
                context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                return context.Response.WriteAsync(gate.Metrics(DefaultModel), context.RequestAborted);
            }

            if (HttpMethods.IsPost(request.Method))
            {
                return gate.RunAsync(() => HandleModelRequestAsync(context), context.RequestAborted);
            }
        }

        return HandleModelRequestAsync(context);
    }

    private async Task HandleModelRequestAsync(HttpContext context)
    {
        var request = context.Request;
        foreach (var wire in _wires)
        {
            if (wire.TryMatch(request, out var wireRoute))
            {
                await HandleWireAsync(context, wire, wireRoute).ConfigureAwait(false);
                return;
            }
        }

        var route = Route.Match(request.Method, request.Path.Value ?? "/");
        var reader = request.BodyReader;
        ReadOnlySequence<byte> body;
        try
        {
            body = await ReadToEndAsync(reader, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            return; // the client left while still sending: there is no whole request to record
        }

        byte[]? bodyBytes = null;
        ParsedRequest? parsed = null;
        var malformed = false;
        try
        {
            if (!_options.FastMode)
            {
                bodyBytes = body.ToArray();
            }

            if (route.Endpoint is UpstreamEndpoint.ChatCompletions or UpstreamEndpoint.Completions or UpstreamEndpoint.Embeddings)
            {
                (parsed, malformed) = TryParse(route.Endpoint, body);
            }
        }
        finally
        {
            reader.AdvanceTo(body.End);
        }

        if (_options.FastMode)
        {
            _recorder.CountUnrecorded();
            var fastState = new ExchangeState();
            try
            {
                await ProcessAsync(context, route, parsed, malformed, fastState, context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception) when (context.RequestAborted.IsCancellationRequested)
            {
            }

            return;
        }

        var completion = new TaskCompletionSource<RequestOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        _recorder.Add(new RecordedRequest
        {
            Method = request.Method,
            Path = request.Path.Value ?? "/",
            QueryString = request.QueryString.Value ?? string.Empty,
            Headers = CopyHeaders(request.Headers),
            Body = bodyBytes!,
            Model = route.IsAzure ? route.Deployment : parsed is not null ? parsed.Model : ModelOf(bodyBytes!),
            Wire = route.IsAzure ? UpstreamWire.AzureOpenAI : route.Endpoint == UpstreamEndpoint.Unknown ? UpstreamWire.Unknown : UpstreamWire.OpenAI,
            ReceivedAt = _time.GetUtcNow(),
            Completion = completion.Task,
        });

        var state = new ExchangeState();
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _shutdown);
        try
        {
            await ProcessAsync(context, route, parsed, malformed, state, cancellation.Token).ConfigureAwait(false);
            completion.TrySetResult(state.Outcome(context.RequestAborted.IsCancellationRequested));
        }
        catch (Exception) when (cancellation.IsCancellationRequested)
        {
            if (!context.RequestAborted.IsCancellationRequested)
            {
                // The server is shutting down: cut the connection rather than let Kestrel end the response cleanly.
                context.Abort();
            }

            completion.TrySetResult(state.Outcome(requestAborted: true));
        }
        catch (Exception ex)
        {
            completion.TrySetException(ex);
            throw;
        }
    }

    /// <summary>The pipeline for the provider wires: read, record, then the wire does the rest.</summary>
    private async Task HandleWireAsync(HttpContext context, ProviderWire wire, WireRoute route)
    {
        var request = context.Request;
        var reader = request.BodyReader;
        byte[] body;
        try
        {
            var sequence = await ReadToEndAsync(reader, context.RequestAborted).ConfigureAwait(false);
            body = sequence.ToArray();
            reader.AdvanceTo(sequence.End);
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            return; // the client left while still sending: there is no whole request to record
        }

        var state = new ExchangeState();
        if (_options.FastMode)
        {
            _recorder.CountUnrecorded();
            try
            {
                await wire.HandleAsync(new WireCall { Context = context, Route = route, Body = body, State = state, CancellationToken = context.RequestAborted })
                    .ConfigureAwait(false);
            }
            catch (Exception) when (context.RequestAborted.IsCancellationRequested)
            {
            }

            return;
        }

        var completion = new TaskCompletionSource<RequestOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        _recorder.Add(new RecordedRequest
        {
            Method = request.Method,
            Path = request.Path.Value ?? "/",
            QueryString = request.QueryString.Value ?? string.Empty,
            Headers = CopyHeaders(request.Headers),
            Body = body,
            Model = wire.ModelOf(route, body),
            Wire = route.Wire,
            ReceivedAt = _time.GetUtcNow(),
            Completion = completion.Task,
        });

        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _shutdown);
        try
        {
            await wire.HandleAsync(new WireCall { Context = context, Route = route, Body = body, State = state, CancellationToken = cancellation.Token })
                .ConfigureAwait(false);
            completion.TrySetResult(state.Outcome(context.RequestAborted.IsCancellationRequested));
        }
        catch (Exception) when (cancellation.IsCancellationRequested)
        {
            if (!context.RequestAborted.IsCancellationRequested)
            {
                // The server is shutting down: cut the connection rather than let Kestrel end the response cleanly.
                context.Abort();
            }

            completion.TrySetResult(state.Outcome(requestAborted: true));
        }
        catch (Exception ex)
        {
            completion.TrySetException(ex);
            throw;
        }
    }

    private async Task ProcessAsync(
        HttpContext context,
        Route route,
        ParsedRequest? parsed,
        bool malformed,
        ExchangeState state,
        CancellationToken cancellationToken)
    {
        var request = context.Request;
        if (route.Endpoint == UpstreamEndpoint.Unknown)
        {
            var notFound = route.IsAzure
                ? ErrorBodies.Azure(404, "Resource not found")
                : ErrorBodies.OpenAI($"Invalid URL ({request.Method} {request.Path.Value})", "invalid_request_error", null, null);
            await ResponseWriter.WriteBodyAsync(context, 404, "application/json", notFound, null, state, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (route.IsAzure && !request.Query.ContainsKey("api-version"))
        {
            await ResponseWriter.WriteBodyAsync(context, 404, "application/json", ErrorBodies.Azure(404, "Resource not found"), null, state, cancellationToken)
                .ConfigureAwait(false);
            return;
        }

        if (Unauthorized(request, route) is { } unauthorized)
        {
            await ResponseWriter.WriteBodyAsync(context, 401, "application/json", unauthorized, null, state, cancellationToken).ConfigureAwait(false);
            return;
        }

        context.Response.Headers["x-request-id"] = Ids.Request();

        if (route.Endpoint == UpstreamEndpoint.Models)
        {
            var models = _behaviors.KnownModels();
            models.Add(DefaultModel);
            models.Sort(StringComparer.Ordinal);
            var list = ModelList.Write(models.Distinct(StringComparer.Ordinal));
            await ResponseWriter.WriteBodyAsync(context, 200, "application/json", list, null, state, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (malformed || parsed is null)
        {
            await WriteBadRequestAsync(context, new RequestError(ErrorBodies.MalformedJson), state, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (parsed.Error is { } error)
        {
            await WriteBadRequestAsync(context, error, state, cancellationToken).ConfigureAwait(false);
            return;
        }

        var model = route.IsAzure ? route.Deployment! : parsed.Model;
        if (model is null)
        {
            await WriteBadRequestAsync(context, new RequestError(ErrorBodies.MissingModel), state, cancellationToken).ConfigureAwait(false);
            return;
        }

        var behavior = _options.FastMode ? _behaviors.Default : _behaviors.Take(model);
        var stream = parsed.Stream && route.Endpoint != UpstreamEndpoint.Embeddings;
        var source = CreateSource(route.Endpoint, parsed, model, behavior, stream);
        await _writer.RespondAsync(context, behavior, model, source, stream, state, cancellationToken).ConfigureAwait(false);
    }

    private ResponseSource CreateSource(UpstreamEndpoint endpoint, ParsedRequest parsed, string model, UpstreamBehavior behavior, bool stream)
    {
        var useTemplate = _options.FastMode
            && endpoint != UpstreamEndpoint.Embeddings
            && behavior.StatusCode is >= 200 and < 300
            && behavior.Fault != UpstreamFault.InvalidJson
            && parsed.N == 1
            && parsed.PromptCount == 1
            && parsed.Prefill is null
            && !(parsed.JsonResponse && behavior.Content is null)
            && !(behavior.RespondWithToolCall && parsed.ToolName is not null);

        ResponseFormatter formatter;
        if (useTemplate)
        {
            var key = new TemplateKey(endpoint, model, stream, parsed.IncludeUsage);
            if (!_templates.TryGetValue(key, out var entry) || !ReferenceEquals(entry.Behavior, behavior))
            {
                entry = new TemplateEntry(behavior, ResponseTemplates.Build(CreateFormatter(endpoint, parsed, model, behavior), stream));
                if (_templates.Count < MaxCachedTemplates || _templates.ContainsKey(key))
                {
                    _templates[key] = entry;
                }
            }

            formatter = entry.Templates.Formatter;
            return new TemplateResponseSource(entry.Templates, CreateValues(endpoint, parsed, behavior, formatter));
        }

        formatter = CreateFormatter(endpoint, parsed, model, behavior);
        return new LiveResponseSource(formatter, CreateValues(endpoint, parsed, behavior, formatter));
    }

    private ResponseValues CreateValues(UpstreamEndpoint endpoint, ParsedRequest parsed, UpstreamBehavior behavior, ResponseFormatter formatter)
    {
        var id = endpoint switch
        {
            UpstreamEndpoint.ChatCompletions => Ids.ChatCompletion(),
            UpstreamEndpoint.Completions => Ids.TextCompletion(),
            _ => string.Empty,
        };
        return new ResponseValues(id, _time.GetUtcNow().ToUnixTimeSeconds(), behavior.PromptTokens ?? parsed.PromptTokens, formatter.CompletionTokens);
    }

    private ResponseFormatter CreateFormatter(UpstreamEndpoint endpoint, ParsedRequest parsed, string model, UpstreamBehavior behavior)
    {
        if (endpoint == UpstreamEndpoint.Embeddings)
        {
            return new EmbeddingFormatter(model, parsed.EmbeddingInputs, parsed.Dimensions ?? _options.EmbeddingDimensions, parsed.Base64, _options.WordEmbeddings);
        }

        if (endpoint == UpstreamEndpoint.Completions)
        {
            var completionText = behavior.Content ?? DefaultContent(model);
            var completionPieces = TextSplitter.Split(completionText, behavior.ChunkCount);
            var completionChoices = parsed.N * parsed.PromptCount;
            return new TextCompletionFormatter(
                model,
                completionText,
                completionPieces,
                completionChoices,
                parsed.IncludeUsage,
                behavior.CompletionTokens ?? completionPieces.Length * completionChoices);
        }

        ReplyKind kind;
        string text;
        string? toolCallId = null;
        string? toolName = null;
        if (behavior.Refusal is { } refusal)
        {
            kind = ReplyKind.Refusal;
            text = refusal;
        }
        else if (behavior.RespondWithToolCall && parsed.ToolName is not null)
        {
            kind = ReplyKind.ToolCall;
            text = behavior.ToolArguments;
            toolCallId = Ids.ToolCall();
            toolName = parsed.ToolName;
        }
        else
        {
            kind = ReplyKind.Text;
            text = behavior.Content ?? (parsed.JsonResponse ? JsonAnswer(model) : DefaultContent(model));
            if (parsed.Prefill is { Length: > 0 } prefill && text.StartsWith(prefill, StringComparison.Ordinal))
            {
                text = text[prefill.Length..];
            }
        }

        var pieces = TextSplitter.Split(text, behavior.ChunkCount);
        return new ChatFormatter(
            model,
            kind,
            text,
            pieces,
            parsed.N,
            parsed.IncludeUsage,
            behavior.CompletionTokens ?? pieces.Length * parsed.N,
            behavior.CachedTokens ?? 0,
            toolCallId,
            toolName);
    }

    private static string DefaultContent(string model) => $"Hello from {model}. This reply is streamed in pieces.";

    private static string JsonAnswer(string model)
    {
        using var buffer = new PooledBufferWriter(256);
        using (var writer = new Utf8JsonWriter(buffer, JsonFormat.WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("answer"u8, "Hello from " + model);
            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private byte[]? Unauthorized(HttpRequest request, Route route)
    {
        if (_options.ExpectedApiKey is not { } expected)
        {
            return null;
        }

        if (route.IsAzure)
        {
            return string.Equals(request.Headers["api-key"].ToString(), expected, StringComparison.Ordinal)
                ? null
                : ErrorBodies.Azure(401, ErrorBodies.AzureAccessDenied);
        }

        var authorization = request.Headers.Authorization.ToString();
        if (authorization.Length == 0)
        {
            return ErrorBodies.OpenAI(ErrorBodies.MissingApiKey, "invalid_request_error", null, null);
        }

        const string Scheme = "Bearer ";
        var key = authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) ? authorization[Scheme.Length..].Trim() : authorization;
        return string.Equals(key, expected, StringComparison.Ordinal)
            ? null
            : ErrorBodies.OpenAI(ErrorBodies.OpenAIInvalidKey(key), "invalid_request_error", null, "invalid_api_key");
    }

    private static Task WriteBadRequestAsync(HttpContext context, RequestError error, ExchangeState state, CancellationToken cancellationToken) =>
        ResponseWriter.WriteBodyAsync(
            context,
            400,
            "application/json",
            ErrorBodies.OpenAI(error.Message, "invalid_request_error", error.Param, error.Code),
            null,
            state,
            cancellationToken);

    private static (ParsedRequest? Parsed, bool Malformed) TryParse(UpstreamEndpoint endpoint, ReadOnlySequence<byte> body)
    {
        try
        {
            using var document = JsonDocument.Parse(body, JsonFormat.DocumentOptions);
            return (ParsedRequest.Parse(endpoint, document.RootElement), false);
        }
        catch (JsonException)
        {
            return (null, true);
        }
    }

    private static string? ModelOf(byte[] body)
    {
        if (body.Length == 0)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(body, JsonFormat.DocumentOptions);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("model"u8, out var model)
                && model.ValueKind == JsonValueKind.String
                ? model.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static Dictionary<string, string> CopyHeaders(IHeaderDictionary headers)
    {
        var copy = new Dictionary<string, string>(headers.Count, StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in headers)
        {
            copy[name] = values.Count == 1 ? values[0] ?? string.Empty : string.Join(", ", values.ToArray());
        }

        return copy;
    }

    /// <summary>Reads the whole body without consuming it; the caller advances past it when done.</summary>
    private static async ValueTask<ReadOnlySequence<byte>> ReadToEndAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (result.IsCompleted || result.IsCanceled)
            {
                return result.Buffer;
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private readonly record struct TemplateKey(UpstreamEndpoint Endpoint, string Model, bool Stream, bool IncludeUsage);

    private sealed record TemplateEntry(UpstreamBehavior Behavior, ResponseTemplates Templates);
}
