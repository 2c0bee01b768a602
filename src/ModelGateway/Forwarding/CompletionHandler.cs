using System.Buffers;
using System.Globalization;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.Hosting;
using ModelGateway.Observability;
using ModelGateway.Protocols;
using ModelGateway.Resilience;
using ModelGateway.Routing;
using ModelGateway.State;
using ModelGateway.Wire;

namespace ModelGateway.Forwarding;

/// <summary>
/// The data plane for <c>/v1/chat/completions</c>, <c>/v1/completions</c> and <c>/v1/embeddings</c>:
/// read and check the body, resolve the route, decide, admit, run the attempts, relay the answer,
/// then settle limits and record usage, metrics and the access log. Every refusal is an
/// OpenAI-shaped error with the right status; nothing the client sent can produce a 500.
/// </summary>
internal sealed partial class CompletionHandler(
    RequestIntake intake,
    Router router,
    FailoverExecutor executor,
    ResponseRelay relay,
    IRateLimiter limiter,
    IUsageRecorder usage,
    GatewayMetrics metrics,
    GatewayTracing tracing,
    GatewayTraffic traffic,
    AccessLog accessLog,
    GracefulDrain drain,
    TimeProvider timeProvider,
    IOptions<GatewayOptions> options,
    ILogger<CompletionHandler> logger,
    Caching.ResponseCache cache)
{
    private static readonly string[] SmallNumbers = Enumerable.Range(0, 32).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();

    private readonly GatewayOptions _options = options.Value;

    public async Task HandleAsync(HttpContext context, ClientProtocol protocol, Operation operation)
    {
        using var request = new GatewayRequest(context, protocol, operation, context.TraceIdentifier, timeProvider.GetTimestamp());
        request.Caller = context.Features.Get<CallerIdentity>() ?? CallerIdentity.Anonymous;
        metrics.RequestStarted();
        try
        {
            var error = await PrepareAsync(request).ConfigureAwait(false);
            if (error is not null)
            {
                await FailAsync(request, error).ConfigureAwait(false);
                return;
            }

            // Caching: after admission, so a hit still counts against the key's RPM (its tokens are settled to zero).
            if (request.Route!.Cache is not null && cache.Plan(request) is { } plan)
            {
                request.CachePlan = plan;
                if (await cache.TryServeAsync(request, plan, context.RequestAborted).ConfigureAwait(false))
                {
                    return;
                }

                try
                {
                    await ServeAsync(request).ConfigureAwait(false);
                }
                finally
                {
                    // Requests waiting on this one's upstream call are released even when it failed.
                    cache.EndFlight(plan);
                }

                return;
            }

            await ServeAsync(request).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; the upstream call was cancelled with it.
            request.StatusCode = 499;
            request.ErrorCode = "client_closed_request";
        }
        catch (BadHttpRequestException ex)
        {
            await FailAsync(request, ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? ApiError.PayloadTooLarge(_options.MaxRequestBodyBytes)
                : ApiError.BadRequest("The request body could not be read: " + ex.Message, "invalid_body")).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            LogUnhandled(logger, request.RequestId, ex);
            await FailAsync(request, ApiError.Internal()).ConfigureAwait(false);
        }
        finally
        {
            await CompleteAsync(request).ConfigureAwait(false);
        }
    }

    /// <summary>Everything up to admission; returns the error to send, or null to go on.</summary>
    private async ValueTask<ApiError?> PrepareAsync(GatewayRequest request)
    {
        var context = request.HttpContext;
        if (await intake.AcceptAsync(request).ConfigureAwait(false) is { } refused)
        {
            if (refused.Code == "model_not_allowed")
            {
                metrics.Rejected("key", "model_not_allowed", request);
            }

            return refused;
        }

        if (await request.Protocol.PrepareAsync(request, context.RequestAborted).ConfigureAwait(false) is { } unprepared)
        {
            return unprepared;
        }

        var route = request.Route!;
        var decision = router.Decide(request, route);
        request.Decision = decision;
        if (decision.Ranked.Length == 0)
        {
            return NoCandidate(decision);
        }

        if (NeedsTranslation(request, decision) && ReadCanonical(request) is { } unreadable)
        {
            return unreadable;
        }

        var estimatedTokens = decision.EstimatedInputTokens + decision.ExpectedOutputTokens;
        var estimatedCost = Router.EstimateCost(decision.Ranked[0], decision.EstimatedInputTokens, decision.ExpectedOutputTokens);
        var admission = await limiter.AdmitAsync(request.Caller, request.RequestId, estimatedTokens, estimatedCost, context.RequestAborted).ConfigureAwait(false);
        request.Admission = admission;
        RateLimitHeaders.Apply(context.Response, admission);
        if (!admission.Allowed)
        {
            metrics.Rejected("key", admission.RejectionReason ?? "limit", request);
            return admission.Rejection;
        }

        return null;
    }

    // The canonical request is built only when a candidate speaks another wire than the client.
    private static bool NeedsTranslation(GatewayRequest request, RoutingDecision decision)
    {
        foreach (var deployment in decision.Ranked)
        {
            if (!deployment.Provider.Adapter.PassesThrough(request.Protocol.Wire))
            {
                return true;
            }
        }

        return false;
    }

    private static ApiError? ReadCanonical(GatewayRequest request)
    {
        try
        {
            // Only the operation's own canonical form is built: an embeddings body is not a chat.
            _ = request.Operation == Operation.Embeddings ? request.Embeddings : (object)request.Canonical;
            return null;
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            return ApiError.BadRequest("The request could not be translated for the chosen deployment: " + ex.Message, "invalid_request");
        }
    }

    private async Task ServeAsync(GatewayRequest request)
    {
        var context = request.HttpContext;
        var route = request.Route!;
        using var deadline = new CancellationTokenSource(route.Resilience.TotalTimeout, timeProvider);
        // A request identical ones follow live keeps its upstream call going for them when its own client leaves.
        await using var aborted = (request.CachePlan?.Leading is { } flight
            ? context.RequestAborted.UnsafeRegister(static state => ((Caching.Flight)state!).LeaderGone(), flight.Lead(deadline))
            : context.RequestAborted.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), deadline)).ConfigureAwait(false);
        await using var graceOver = drain.GraceOver.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), deadline).ConfigureAwait(false);
        var cancellationToken = deadline.Token;

        AttemptOutcome outcome;
        try
        {
            outcome = await RunAttemptsAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested && deadline.IsCancellationRequested)
        {
            await FailAsync(request, drain.IsGraceOver ? drain.CutShort() : ApiError.GatewayTimeout($"No deployment answered within the route's total timeout of {Durations.Format(route.Resilience.TotalTimeout)}.")).ConfigureAwait(false);
            return;
        }

        await using (outcome.ConfigureAwait(false))
        {
            if (!outcome.IsSuccess)
            {
                await FailAsync(request, outcome.Error ?? ApiError.BadGateway("The model could not be reached.")).ConfigureAwait(false);
                return;
            }

            var deployment = outcome.Deployment!;
            request.ServedBy = deployment;
            request.Affinity?.Remember(deployment);
            request.FirstByteTimestamp = outcome.FirstByteAt;
            request.TimeToFirstToken = timeProvider.GetElapsedTime(outcome.StartedAt, outcome.FirstByteAt);
            request.StatusCode = StatusCodes.Status200OK;
            if (!context.Response.HasStarted)
            {
                WriteRoutingHeaders(context.Response, request, deployment, outcome);
            }
            else if (outcome.IsStream)
            {
                // Keep-alives took the headers out before the deployment was known: name it in the stream.
                Routing.Signals.ServedByNotice.WriteDeploymentComment(context.Response, deployment.Name);
            }

            Canonical.ChatResponse? cacheable = null;
            if (request.CachePlan is { } plan)
            {
                Caching.ResponseCache.BeginCapture(request, plan);
                cacheable = cache.StorableWhole(request, plan, outcome);
            }

            try
            {
                if (outcome.IsStream)
                {
                    metrics.StreamStarted();
                    try
                    {
                        await relay.RelayStreamAsync(request, outcome, cancellationToken).ConfigureAwait(false);
                    }
                    finally
                    {
                        metrics.StreamEnded();
                    }
                }
                else
                {
                    await relay.WriteBufferedAsync(request, outcome, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested && deadline.IsCancellationRequested)
            {
                var cut = drain.IsGraceOver ? drain.CutShort() : new ApiError(504, $"The answer did not finish within the route's total timeout of {Durations.Format(route.Resilience.TotalTimeout)}.", "timeout", "total_timeout");
                await ResponseRelay.FailStreamAsync(context, cut, timeProvider, _options, protocol: request.Protocol).ConfigureAwait(false);
                request.ErrorCode = cut.Code;
            }

            if (!request.StreamCompleted)
            {
                request.ErrorCode ??= "stream_interrupted";
            }

            if (request.CachePlan is { } stored)
            {
                await cache.StoreAsync(request, stored, cacheable).ConfigureAwait(false);
            }

            RecordLatency(request, outcome);
            if (!request.Continued)
            {
                tracing.Completed(outcome.Activity, request, request.CapturedOutput);
            }
        }
    }

    // Runs the failover walk; for streams, keeps a slow first token from looking like a dead connection.
    private ValueTask<AttemptOutcome> RunAttemptsAsync(GatewayRequest request, CancellationToken cancellationToken)
    {
        var attempt = executor.ExecuteAsync(request, cancellationToken);
        var interval = request.Route!.Resilience.KeepAliveInterval;
        if (attempt.IsCompleted || !request.Info.Stream || interval <= TimeSpan.Zero)
        {
            return attempt;
        }

        return new ValueTask<AttemptOutcome>(KeepAliveUntilAnsweredAsync(request, attempt.AsTask(), interval, cancellationToken));
    }

    private async Task<AttemptOutcome> KeepAliveUntilAnsweredAsync(GatewayRequest request, Task<AttemptOutcome> task, TimeSpan interval, CancellationToken cancellationToken)
    {
        var response = request.HttpContext.Response;
        while (true)
        {
            try
            {
                return await task.WaitAsync(interval, timeProvider, CancellationToken.None).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Comments are invisible to SSE clients but keep load balancers from cutting an idle connection.
                Routing.Signals.ServedByNotice.WriteKeepAlive(response, request.Route!.Name);
                await response.BodyWriter.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task FailAsync(GatewayRequest request, ApiError error)
    {
        error = Routing.Signals.ServedByNotice.NameFailures(request.HttpContext.Response, request.Attempts, error);
        request.StatusCode = error.Status;
        request.ErrorCode ??= error.Code ?? error.Type;
        var context = request.HttpContext;
        if (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        if (context.Response.HasStarted)
        {
            // Keep-alives already sent a 200: report in-band, then abort so the stream cannot look complete.
            await ResponseRelay.FailStreamAsync(context, error, timeProvider, _options, protocol: request.Protocol).ConfigureAwait(false);
            return;
        }

        // In the client's own API shape (OpenAI, Anthropic Messages, Responses).
        await request.Protocol.WriteErrorAsync(context, error).ConfigureAwait(false);
    }

    private static ApiError NoCandidate(RoutingDecision decision)
    {
        var route = decision.Route.Name;
        return decision.Blocking switch
        {
            Exclusion.ContextWindow => ApiError.BadRequest(
                $"This model's maximum context length is {decision.BlockingLimit} tokens. However, your request needs about {decision.BlockingTokens} tokens (prompt plus max_tokens). Please reduce the length of the messages or max_tokens.",
                "context_length_exceeded",
                "messages"),
            Exclusion.MaxOutput => ApiError.BadRequest(
                $"max_tokens is too large: {decision.BlockingTokens}. No deployment of '{route}' supports more than {decision.BlockingLimit} completion tokens.",
                "invalid_value",
                "max_tokens"),
            Exclusion.CircuitOpen => ApiError.Unavailable($"Every deployment of '{route}' is failing and temporarily out of rotation.", retryAfter: decision.BlockingRetryAfter),
            Exclusion.CoolingDown or Exclusion.RateLimited or Exclusion.Quota => ApiError.RateLimited($"Every deployment of '{route}' is at its rate limit.", decision.BlockingRetryAfter),
            Exclusion.AtCapacity => ApiError.Unavailable($"Every deployment of '{route}' is at capacity.", "capacity_exceeded", decision.BlockingRetryAfter),
            Exclusion.KeyConstraint => new ApiError(403, $"This API key may not use any deployment of '{route}'.", "invalid_request_error", "model_not_allowed", "model"),
            Exclusion.RouteConstraint => ApiError.Unavailable($"No deployment of '{route}' satisfies the route's constraints.", "no_eligible_deployment"),
            Exclusion.Tools => ApiError.BadRequest($"No deployment of '{route}' supports tools.", "unsupported_capability", "tools"),
            Exclusion.Vision => ApiError.BadRequest($"No deployment of '{route}' accepts image input.", "unsupported_capability", "messages"),
            Exclusion.JsonSchema => ApiError.BadRequest($"No deployment of '{route}' supports response_format json_schema.", "unsupported_capability", "response_format"),
            Exclusion.MediaUrl => ApiError.BadRequest(
                $"The deployments of '{route}' need images and documents inline (base64 or a data: URL): they cannot take URLs, and the gateway does not fetch URLs for them. Send the content inline.",
                Providers.Media.MediaFetchException.NotInline,
                "messages"),
            _ => ApiError.BadRequest($"The model '{route}' does not serve this operation.", "unsupported_operation", "model"),
        };
    }

    private static void WriteRoutingHeaders(HttpResponse response, GatewayRequest request, Deployment deployment, AttemptOutcome outcome)
    {
        var headers = response.Headers;
        var decision = request.Decision!;
        headers["x-modelgateway-route"] = request.Route!.Name;
        headers["x-modelgateway-deployment"] = deployment.Name;
        headers["x-modelgateway-provider"] = deployment.Provider.Name;
        headers["x-modelgateway-route-reason"] = ReferenceEquals(decision.Ranked[0], deployment)
            ? decision.ReasonText
            : "failover: " + decision.Ranked[0].Name + " failed";
        var attempts = request.Attempts.Count;
        headers["x-modelgateway-attempts"] = attempts < SmallNumbers.Length ? SmallNumbers[attempts] : attempts.ToString(CultureInfo.InvariantCulture);
        if (outcome.Response?.RequestId is { } upstreamId)
        {
            headers["x-upstream-request-id"] = upstreamId;
        }

        if (DroppedFields(request) is { } dropped)
        {
            // What the translation for this deployment could not carry (Claude Code's context_management, a web_search tool...).
            headers[DroppedHeader] = string.Join(',', dropped);
        }
    }

    /// <summary>Names the client fields a translated request had to drop (<c>tools.web_search</c>, <c>context_management</c>...).</summary>
    public const string DroppedHeader = "x-modelgateway-dropped";

    // Only for an answer that was translated: a pass-through deployment got every field. Mappers add per
    // attempt, so a failover can name a field twice.
    private static List<string>? DroppedFields(GatewayRequest request)
        => request.ServedBy is { } served && request.CanonicalIfBuilt is { Dropped.Count: > 0 } canonical && !served.Provider.Adapter.PassesThrough(request.Protocol.Wire)
            ? canonical.Dropped.Distinct(StringComparer.Ordinal).ToList()
            : null;

    private void RecordLatency(GatewayRequest request, AttemptOutcome outcome)
    {
        if (!request.StreamCompleted || request.ServedBy is not { } deployment || request.Continued)
        {
            return;
        }

        var total = timeProvider.GetElapsedTime(outcome.StartedAt);
        deployment.State.Latency.Record(request.Info.Stream ? request.TimeToFirstToken : null, total);
    }

    private async ValueTask CompleteAsync(GatewayRequest request)
    {
        var elapsed = timeProvider.GetElapsedTime(request.StartTimestamp);
        try
        {
            if (request.ServedBy is { } deployment)
            {
                request.Cost = deployment.Pricing.IsHourly ? 0 : deployment.Pricing.Cost(request.Usage);
                await limiter.SettleDeploymentAsync(deployment, request.DeploymentAdmission, request.Usage.Input + request.Usage.Output).ConfigureAwait(false);
            }

            if (request.Admission is { Allowed: true } admission)
            {
                await limiter.SettleAsync(request.Caller, admission, request.Usage.Input + request.Usage.Output, request.Cost).ConfigureAwait(false);
            }

            if (request.Route is not null)
            {
                await usage.RecordAsync(request, elapsed).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogSettleFailed(logger, request.RequestId, ex);
        }

        metrics.RequestFinished(request, elapsed.TotalSeconds);
        if (DroppedFields(request) is { } dropped)
        {
            metrics.TranslationDropped(request.Protocol.Api, dropped);
        }

        traffic.Record(request.StatusCode, request.StreamCompleted);
        GatewayTracing.TagServerSpan(request);
        accessLog.Write(request, elapsed.TotalMilliseconds);
    }

    [LoggerMessage(EventId = 2201, Level = LogLevel.Error, Message = "Request {RequestId} failed unexpectedly")]
    private static partial void LogUnhandled(ILogger logger, string requestId, Exception exception);

    [LoggerMessage(EventId = 2202, Level = LogLevel.Warning, Message = "Request {RequestId}: settling limits or recording usage failed")]
    private static partial void LogSettleFailed(ILogger logger, string requestId, Exception exception);
}
