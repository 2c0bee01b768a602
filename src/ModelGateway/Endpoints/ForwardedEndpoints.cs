using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Observability;
using ModelGateway.Protocols;
using ModelGateway.Providers;
using ModelGateway.State;
using ModelGateway.Wire;

namespace ModelGateway.Endpoints;

/// <summary>
/// The OpenAI endpoints the gateway forwards without interpreting them: <c>/v1/images/*</c>,
/// <c>/v1/audio/*</c>, <c>/v1/moderations</c>, <c>/v1/files</c> and <c>/v1/batches</c>. Each goes to a
/// deployment that declares the matching capability (<c>images</c>, <c>audio</c>, <c>moderations</c>,
/// <c>files</c>, <c>batches</c>); while none does, the path keeps its 404. The key's model allow-list
/// and request-rate limits apply, multipart bodies pass through untouched, and usage is recorded when
/// the answer carries it (image generation, transcriptions).
/// </summary>
internal static class ForwardedEndpoints
{
    public static IEndpointRouteBuilder MapForwardedEndpoints(this IEndpointRouteBuilder v1)
    {
        string[] methods = [HttpMethods.Get, HttpMethods.Post, HttpMethods.Delete];
        Map(v1, "/images/{**rest}", methods, ForwardedApi.Images);
        Map(v1, "/audio/{**rest}", methods, ForwardedApi.Audio);
        Map(v1, "/moderations", methods, ForwardedApi.Moderations);
        Map(v1, "/files", methods, ForwardedApi.Files);
        Map(v1, "/files/{**rest}", methods, ForwardedApi.Files);
        Map(v1, "/batches", methods, ForwardedApi.Batches);
        Map(v1, "/batches/{**rest}", methods, ForwardedApi.Batches);
        return v1;
    }

    private static void Map(IEndpointRouteBuilder v1, string pattern, string[] methods, ForwardedApi api)
        => v1.MapMethods(pattern, methods, context => context.RequestServices.GetRequiredService<ForwardedHandler>().HandleAsync(context, api));
}

/// <summary>One forwarded API: its capability, its <c>api</c> label, and whether a body names a model.</summary>
internal sealed class ForwardedApi : ClientProtocol
{
    public static readonly ForwardedApi Images = new("images", Capabilities.Images, namesModel: true);
    public static readonly ForwardedApi Audio = new("audio", Capabilities.Audio, namesModel: true);
    public static readonly ForwardedApi Moderations = new("moderations", Capabilities.Moderations, namesModel: true);
    public static readonly ForwardedApi Files = new("files", Capabilities.Files, namesModel: false);
    public static readonly ForwardedApi Batches = new("batches", Capabilities.Batches, namesModel: false);

    private ForwardedApi(string api, Capabilities capability, bool namesModel)
    {
        Api = api;
        Capability = capability;
        NamesModel = namesModel;
    }

    public override WireFormat Wire => WireFormat.OpenAIChat;

    public override string Api { get; }

    public Capabilities Capability { get; }

    /// <summary>
    /// Images, audio and moderations name a model in their body (JSON or multipart), which picks the route;
    /// files and batches name none (and may be large uploads), so they go to the first deployment declaring them.
    /// </summary>
    public bool NamesModel { get; }

    // The gateway reads none of these bodies as a chat: the handler below does all there is to do.
    public override bool TryParse(ReadOnlySpan<byte> body, Operation operation, int maxDepth, out RequestInfo info, out RequestProblem problem)
        => throw new NotSupportedException();

    public override ChatRequest ReadCanonical(GatewayRequest request) => throw new NotSupportedException();

    public override IStreamEncoder CreateEncoder(GatewayRequest request, string model, long created) => throw new NotSupportedException();

    public override void WriteResponse(GatewayRequest request, ChatResponse response, string model, long created, IBufferWriter<byte> output)
        => throw new NotSupportedException();
}

/// <summary>Picks the deployment, admits the key, forwards, and records what the chat path records.</summary>
internal sealed partial class ForwardedHandler(
    RoutingConfigManager config,
    RawForwarder forwarder,
    IRateLimiter limiter,
    IUsageRecorder usage,
    GatewayMetrics metrics,
    AccessLog accessLog,
    TimeProvider timeProvider,
    IOptions<GatewayOptions> options,
    ILogger<ForwardedHandler> logger)
{
    public async Task HandleAsync(HttpContext context, ForwardedApi api)
    {
        using var request = new GatewayRequest(context, api, Operation.ChatCompletions, context.TraceIdentifier, timeProvider.GetTimestamp());
        request.Caller = context.Features.Get<CallerIdentity>() ?? CallerIdentity.Anonymous;
        request.Catalog = config.Current;
        metrics.RequestStarted();
        try
        {
            await ServeAsync(request, api).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            request.StatusCode = 499;
            request.ErrorCode = "client_closed_request";
        }
        catch (BadHttpRequestException ex)
        {
            await FailAsync(request, ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? ApiError.PayloadTooLarge(options.Value.MaxRequestBodyBytes)
                : ApiError.BadRequest("The request body could not be read: " + ex.Message, "invalid_body")).ConfigureAwait(false);
        }
        finally
        {
            await CompleteAsync(request).ConfigureAwait(false);
        }
    }

    private async Task ServeAsync(GatewayRequest request, ForwardedApi api)
    {
        var context = request.HttpContext;
        var catalog = request.Catalog;
        if (!Declared(catalog, api.Capability))
        {
            // No deployment declares it: the path is as unknown as before the capability existed.
            await FailAsync(request, ApiError.NotFound(context.Request.Path)).ConfigureAwait(false);
            return;
        }

        byte[]? body = null;
        Deployment? deployment;
        if (api.NamesModel && HttpMethods.IsPost(context.Request.Method))
        {
            body = await ReadBodyAsync(context).ConfigureAwait(false);
            if (body is null)
            {
                await FailAsync(request, ApiError.PayloadTooLarge(options.Value.MaxRequestBodyBytes)).ConfigureAwait(false);
                return;
            }

            var model = ModelOf(body, context.Request.ContentType);
            if (model is null || !catalog.TryGetRoute(model, out var route))
            {
                await FailAsync(request, model is null
                    ? ApiError.BadRequest("The request names no model.", "missing_model", "model")
                    : ApiError.ModelNotFound(model)).ConfigureAwait(false);
                return;
            }

            request.Route = route;
            if (!request.Caller.MayUseModel(route.Name))
            {
                metrics.Rejected("key", "model_not_allowed", request);
                await FailAsync(request, new ApiError(403, $"This API key is not allowed to use the model '{route.Name}'.", "invalid_request_error", "model_not_allowed", "model")).ConfigureAwait(false);
                return;
            }

            deployment = First(route.IsAuto ? catalog.DeploymentList : route.Targets, api.Capability);
            if (deployment is null)
            {
                await FailAsync(request, new ApiError(400, $"The model '{route.Name}' has no deployment that serves {api.Api} (capability '{api.Api}').", "invalid_request_error", "unsupported_capability", "model")).ConfigureAwait(false);
                return;
            }

            body = SpliceModel(body, context.Request.ContentType, deployment.UpstreamModel);
        }
        else
        {
            // Files and batches live on one provider account: always the first deployment that declares them,
            // among those the key may use, so an id made by one call is found by the next.
            deployment = FirstAllowed(catalog, request.Caller, api.Capability, out var route);
            if (deployment is null)
            {
                await FailAsync(request, new ApiError(403, $"This API key is not allowed to use any model that serves {api.Api}.", "invalid_request_error", "model_not_allowed", null)).ConfigureAwait(false);
                return;
            }

            request.Route = route;
        }

        var admission = await limiter.AdmitAsync(request.Caller, request.RequestId, 0, 0, context.RequestAborted).ConfigureAwait(false);
        request.Admission = admission;
        RateLimitHeaders.Apply(context.Response, admission);
        if (!admission.Allowed)
        {
            metrics.Rejected("key", admission.RejectionReason ?? "limit", request);
            await FailAsync(request, admission.Rejection ?? new ApiError(429, "Rate limit reached for this API key.", "requests", "rate_limit_exceeded")).ConfigureAwait(false);
            return;
        }

        request.ServedBy = deployment;
        var path = context.Request.Path.Value!["/v1/".Length..];

        // An unread body (an upload) streams through; a null array must not become an empty buffered body.
        var started = timeProvider.GetTimestamp();
        var kept = await forwarder.ForwardAsync(context, deployment, (IRawForwardingAdapter)deployment.Provider.Adapter, new HttpMethod(context.Request.Method), path, body is null ? default(ReadOnlyMemory<byte>?) : body, inspect: true).ConfigureAwait(false);
        request.StatusCode = context.Response.StatusCode;
        request.TimeToFirstToken = timeProvider.GetElapsedTime(started);
        request.StreamCompleted = true;
        if (request.StatusCode is >= 200 and < 300 && !kept.IsEmpty)
        {
            request.Usage = UsageOf(kept.Span);
        }
        else if (request.StatusCode >= 400)
        {
            request.ErrorCode = "upstream_" + request.StatusCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    private async Task FailAsync(GatewayRequest request, ApiError error)
    {
        request.StatusCode = error.Status;
        request.ErrorCode = error.Code ?? error.Type;
        if (!request.HttpContext.Response.HasStarted)
        {
            await error.WriteAsync(request.HttpContext).ConfigureAwait(false);
        }
    }

    private async ValueTask CompleteAsync(GatewayRequest request)
    {
        var elapsed = timeProvider.GetElapsedTime(request.StartTimestamp);
        try
        {
            if (request.ServedBy is { } deployment)
            {
                request.Cost = deployment.Pricing.IsHourly ? 0 : deployment.Pricing.Cost(request.Usage);
            }

            if (request.Admission is { Allowed: true } admission)
            {
                await limiter.SettleAsync(request.Caller, admission, request.Usage.Input + request.Usage.Output, request.Cost).ConfigureAwait(false);
            }

            if (request.Route is not null && request.ServedBy is not null)
            {
                await usage.RecordAsync(request, elapsed).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogSettleFailed(logger, request.RequestId, ex);
        }

        metrics.RequestFinished(request, elapsed.TotalSeconds);
        accessLog.Write(request, elapsed.TotalMilliseconds);
    }

    private static bool Declared(GatewayCatalog catalog, Capabilities capability)
    {
        foreach (var deployment in catalog.DeploymentList)
        {
            if (Serves(deployment, capability))
            {
                return true;
            }
        }

        return false;
    }

    private static bool Serves(Deployment deployment, Capabilities capability)
        => (deployment.Capabilities & capability) != 0 && deployment.Provider.Adapter is IRawForwardingAdapter;

    private static Deployment? First(IEnumerable<Deployment> deployments, Capabilities capability)
    {
        foreach (var deployment in deployments)
        {
            if (Serves(deployment, capability))
            {
                return deployment;
            }
        }

        return null;
    }

    // The first declaring deployment (in routing-file order) that a route the key may use targets; the
    // route is the one usage is recorded under.
    private static Deployment? FirstAllowed(GatewayCatalog catalog, CallerIdentity caller, Capabilities capability, out ModelRoute? route)
    {
        foreach (var deployment in catalog.DeploymentList)
        {
            if (!Serves(deployment, capability))
            {
                continue;
            }

            foreach (var candidate in catalog.RouteList)
            {
                if (!candidate.IsAuto && caller.MayUseModel(candidate.Name) && Array.IndexOf(candidate.Targets, deployment) >= 0)
                {
                    route = candidate;
                    return deployment;
                }
            }
        }

        route = null;
        return null;
    }

    private async Task<byte[]?> ReadBodyAsync(HttpContext context)
    {
        var limit = options.Value.MaxRequestBodyBytes;
        if (context.Request.ContentLength > limit)
        {
            return null;
        }

        using var buffer = new MemoryStream(context.Request.ContentLength is { } length ? (int)length : 4096);
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    /// <summary>The <c>model</c> a JSON body or a multipart form names, or null.</summary>
    internal static string? ModelOf(byte[] body, string? contentType)
    {
        if (Boundary(contentType) is { } boundary)
        {
            return ModelOfForm(body, boundary);
        }

        try
        {
            var reader = new Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isModel = reader.ValueTextEquals("model"u8);
                reader.Read();
                if (isModel)
                {
                    return reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }

                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }

    private static string? ModelOfForm(byte[] body, string boundary)
    {
        var reader = new MultipartReader(boundary, new MemoryStream(body, writable: false));
        try
        {
            // Synchronous over an in-memory stream: nothing here waits on I/O.
            while (reader.ReadNextSectionAsync().GetAwaiter().GetResult() is { } section)
            {
                if (ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                    && disposition.IsFormDisposition() && disposition.Name.Value?.Trim('"') == "model")
                {
                    using var text = new StreamReader(section.Body, Encoding.UTF8);
                    return text.ReadToEnd().Trim();
                }
            }
        }
        catch (IOException)
        {
        }

        return null;
    }

    private static string? Boundary(string? contentType)
        => contentType is not null && MediaTypeHeaderValue.TryParse(contentType, out var media)
            && media.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
            && HeaderUtilities.RemoveQuotes(media.Boundary).Value is { Length: > 0 } boundary
            ? boundary
            : null;

    /// <summary>
    /// A JSON body's <c>model</c> becomes the deployment's upstream model, as on the chat path. A multipart
    /// body goes as the client wrote it (its model field too), byte for byte.
    /// </summary>
    private static byte[] SpliceModel(byte[] body, string? contentType, string upstreamModel)
    {
        if (Boundary(contentType) is not null)
        {
            return body;
        }

        var reader = new Utf8JsonReader(body);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isModel = reader.ValueTextEquals("model"u8);
            reader.Read();
            if (isModel)
            {
                var start = (int)reader.TokenStartIndex;
                var end = (int)reader.BytesConsumed;
                var value = Encoding.UTF8.GetBytes("\"" + JsonEncodedText.Encode(upstreamModel).Value + "\"");
                return [.. body.AsSpan(0, start), .. value, .. body.AsSpan(end)];
            }

            reader.Skip();
        }

        return body;
    }

    /// <summary>Usage where OpenAI reports it: <c>input_tokens</c>/<c>output_tokens</c> (images, transcriptions) or <c>prompt_tokens</c>/<c>completion_tokens</c>.</summary>
    internal static TokenUsage UsageOf(ReadOnlySpan<byte> json)
    {
        var usage = default(TokenUsage);
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return usage;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isUsage = reader.ValueTextEquals("usage"u8);
                reader.Read();
                if (!isUsage || reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var input = reader.ValueTextEquals("input_tokens"u8) || reader.ValueTextEquals("prompt_tokens"u8);
                    var output = reader.ValueTextEquals("output_tokens"u8) || reader.ValueTextEquals("completion_tokens"u8);
                    reader.Read();
                    if ((input || output) && reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var tokens))
                    {
                        if (input)
                        {
                            usage.Input = tokens;
                        }
                        else
                        {
                            usage.Output = tokens;
                        }

                        usage.Reported = true;
                    }
                    else
                    {
                        reader.Skip();
                    }
                }

                return usage;
            }
        }
        catch (JsonException)
        {
        }

        return usage;
    }

    [LoggerMessage(EventId = 2402, Level = LogLevel.Warning, Message = "Request {RequestId}: settling limits or recording usage failed")]
    private static partial void LogSettleFailed(ILogger logger, string requestId, Exception exception);
}
