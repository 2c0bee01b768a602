using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Observability;
using ModelGateway.Protocols;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Providers;
using ModelGateway.Providers.OpenAI;
using ModelGateway.Routing;
using ModelGateway.Routing.Objectives;
using ModelGateway.State;
using ModelGateway.Wire;
using Polly;
using Polly.Hedging;
using Polly.Retry;
using Polly.Timeout;

namespace ModelGateway.Resilience;

/// <summary>
/// Walks a request's ranked candidates until one answers: Polly's retry (or hedging, per route)
/// drives the attempts, each attempt runs inside its deployment's circuit breaker and timeout, and
/// an attempt counts as answered at its first byte (the first SSE event of a stream), the last
/// moment at which the client cannot tell that another deployment was tried.
/// </summary>
internal sealed partial class FailoverExecutor
{
    private static readonly ResiliencePropertyKey<AttemptState> StateKey = new("modelgateway.attempt-state");

    private readonly RetryBudget _budget;
    private readonly TimeProvider _timeProvider;
    private readonly IRateLimiter _limiter;
    private readonly GatewayMetrics _metrics;
    private readonly ILogger<FailoverExecutor> _logger;
    private readonly GatewayOptions _options;
    private readonly GatewayTracing _tracing;
    private readonly Routing.Signals.FleetCapacity? _fleet;

    public FailoverExecutor(RetryBudget budget, TimeProvider timeProvider, IRateLimiter limiter, GatewayMetrics metrics, GatewayTracing tracing, GatewayOptions options, ILogger<FailoverExecutor> logger, Routing.Signals.FleetCapacity? fleet = null)
    {
        _fleet = fleet;
        _tracing = tracing;
        _budget = budget;
        _timeProvider = timeProvider;
        _limiter = limiter;
        _metrics = metrics;
        _options = options;
        _logger = logger;
    }

    /// <summary>Builds a route's pipeline: hedging when the route asks for it, otherwise retry with failover.</summary>
    public ResiliencePipeline<AttemptOutcome> BuildPipeline(ModelRoute route)
    {
        var resilience = route.Resilience;
        var builder = new ResiliencePipelineBuilder<AttemptOutcome> { Name = route.Name, TimeProvider = _timeProvider };
        if (resilience.Hedging is { } hedging)
        {
            builder.AddHedging(new HedgingStrategyOptions<AttemptOutcome>
            {
                Name = "hedging",
                MaxHedgedAttempts = Math.Max(1, hedging.MaxAttempts - 1),
                Delay = hedging.Delay,
                ShouldHandle = args => new ValueTask<bool>(ShouldFailOver(args.Outcome, args.Context)),
                ActionGenerator = args =>
                {
                    var state = args.PrimaryContext.Properties.GetValue(StateKey, null!);
                    if (!state.HasCandidate(afterFailure: null))
                    {
                        return null;
                    }

                    // After a failure the next attempt is a failover (counted there); otherwise the first was slow: a hedge.
                    if (!state.TakeFailoverPending())
                    {
                        _metrics.Hedge(route.Name);
                    }

                    var context = args.ActionContext;
                    return () => RunNextAsync(context, state);
                },
            });
        }
        else if (resilience.MaxAttempts > 1)
        {
            builder.AddRetry(new RetryStrategyOptions<AttemptOutcome>
            {
                Name = "failover",
                MaxRetryAttempts = resilience.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = resilience.Backoff,
                MaxDelay = resilience.MaxBackoff,
                ShouldHandle = args => new ValueTask<bool>(ShouldFailOver(args.Outcome, args.Context)),
                DelayGenerator = args =>
                {
                    var state = args.Context.Properties.GetValue(StateKey, null!);
                    var failed = args.Outcome.Result;

                    // A different deployment is tried at once; the same one again only after a backoff.
                    if (state.HasFreshCandidate())
                    {
                        return new ValueTask<TimeSpan?>(TimeSpan.Zero);
                    }

                    return new ValueTask<TimeSpan?>(failed?.RetryAfter is { } wait && wait <= resilience.MaxRetryAfter ? wait : null);
                },
            });
        }

        return builder.Build();
    }

    /// <summary>Runs the attempts. Returns the winning attempt, or the failure the client should see.</summary>
    public async ValueTask<AttemptOutcome> ExecuteAsync(GatewayRequest request, CancellationToken cancellationToken)
    {
        _budget.RecordRequest();
        var state = new AttemptState(request, this);
        request.AttemptState = state;
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(StateKey, state);
        try
        {
            var outcome = await request.Route!.Pipeline.ExecuteOutcomeAsync(
                static (ctx, state) => state.Executor.RunNextAsync(ctx, state), context, state).ConfigureAwait(false);
            if (outcome.Exception is { } exception)
            {
                if (exception is OperationCanceledException && cancellationToken.IsCancellationRequested)
                {
                    throw new OperationCanceledException(cancellationToken);
                }

                LogUnexpected(_logger, request.RequestId, exception);
                return AttemptOutcome.Failed(null, AttemptFailure.Unavailable, ApiError.Internal(), exception.GetType().Name);
            }

            var result = outcome.Result!;
            return result.IsSuccess ? result : state.FinalFailure(result);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>
    /// Opens a continuation of a broken stream on another deployment that supports prefill.
    /// Returns null when none can; the caller then reports the original failure.
    /// </summary>
    public async ValueTask<AttemptOutcome?> ContinueAsync(GatewayRequest request, Deployment failed, ReadOnlyMemory<byte> prefillJson, CancellationToken cancellationToken)
    {
        var state = request.AttemptState!;
        while (state.TryTakeContinuationCandidate(failed, out var deployment))
        {
            var context = ResilienceContextPool.Shared.Get(cancellationToken);
            try
            {
                var timeout = FirstByteTimeout(request, deployment);
                context.Properties.Set(DeploymentCircuit.AttemptTimeout, timeout);
                // A named-event stream (Anthropic's) is continued translated: the client's encoder carries on in the
                // message it already started, which a second pass-through stream (its own message_start) cannot.
                var passThrough = deployment.Provider.Adapter.PassesThrough(request.Protocol.Wire) && request.Protocol.NamedEvents is null;
                var call = new UpstreamRequest(request, deployment, passThrough) { AskForStreamUsage = deployment.StreamUsage, PrefillJson = prefillJson };
                var outcome = await RunInCircuitAsync(context, state, deployment, call).ConfigureAwait(false);
                if (outcome is { IsSuccess: true })
                {
                    return outcome;
                }

                if (outcome is not null)
                {
                    await outcome.DisposeAsync().ConfigureAwait(false);
                }
            }
            finally
            {
                ResilienceContextPool.Shared.Return(context);
            }
        }

        return null;
    }

    private bool ShouldFailOver(Outcome<AttemptOutcome> outcome, ResilienceContext context)
    {
        if (outcome.Exception is not null || outcome.Result is not { IsSuccess: false, IsRetriable: true } failed)
        {
            return false;
        }

        var state = context.Properties.GetValue(StateKey, null!);
        if (!state.HasCandidate(failed))
        {
            return false;
        }

        // Moving to a deployment known to be healthy is not a retry storm: it never draws on the budget.
        // Neither is leaving a deployment that said 429 (quotas): it is cooled down, so no request tries it twice.
        // Anything else does; when the budget is spent, only such a deployment may still be tried.
        if (failed.Failure != AttemptFailure.RateLimited && !state.NextCandidateIsKnownHealthy() && !_budget.TryWithdraw())
        {
            if (!state.HasKnownHealthyCandidate())
            {
                state.BudgetExhausted = true;
                _metrics.RetryBudgetExhausted(state.Request.Route!.Name);
                return false;
            }

            state.OnlyKnownHealthy = true;
        }

        state.FailoverPending();
        _metrics.Failover(state.Request.Route!.Name, failed.Deployment?.Name);
        return true;
    }

    private async ValueTask<Outcome<AttemptOutcome>> RunNextAsync(ResilienceContext context, AttemptState state)
    {
        var request = state.Request;
        while (state.TryTakeCandidate(out var deployment))
        {
            // Providers count max_tokens against a token quota at admission (quotas); the usage settles it after.
            var counted = request.Info.MaxTokens is { } max ? Math.Min(max, deployment.MaxOutputTokens ?? max) : request.Decision!.ExpectedOutputTokens;
            var admission = await _limiter.TryAcquireDeploymentAsync(deployment, request.Decision!.EstimatedInputTokens + counted, context.CancellationToken).ConfigureAwait(false);
            if (!admission.Allowed)
            {
                _metrics.Rejected("deployment", "provider_limit", request);
                state.Skip(deployment, Exclusion.RateLimited, admission.RetryAfter);
                continue;
            }

            var retries = request.Route!.RetriesFor(deployment);
            for (var retry = 0; ; retry++)
            {
                context.Properties.Set(DeploymentCircuit.AttemptTimeout, FirstByteTimeout(request, deployment));
                if (_fleet is not null && !await _fleet.TryLeaseAsync(deployment, request.Route.Resilience.TotalTimeout, context.CancellationToken).ConfigureAwait(false))
                {
                    // Live load signals: the replicas sharing Redis already fill this deployment's capacity.
                    _metrics.Rejected("deployment", "fleet_capacity", request);
                    state.Skip(deployment, Exclusion.AtCapacity, TimeSpan.FromSeconds(1));
                    break;
                }

                var call = new UpstreamRequest(request, deployment, deployment.Provider.Adapter.PassesThrough(request.Protocol.Wire)) { AskForStreamUsage = request.Info.Stream && deployment.StreamUsage };
                var outcome = await RunInCircuitAsync(context, state, deployment, call).ConfigureAwait(false);
                if (outcome is null)
                {
                    // The circuit refused (open, or its one recovery test is taken): on to the next candidate.
                    Routing.Signals.FleetCapacity.ReleaseUnused(deployment);
                    break;
                }

                if (outcome.IsSuccess)
                {
                    request.DeploymentAdmission = admission;
                    return Outcome.FromResult(outcome);
                }

                if (retry >= retries || RetryDelay(outcome, retry, request.Route.Resilience) is not { } wait || !_budget.TryWithdraw())
                {
                    return Outcome.FromResult(outcome);
                }

                LogRetrying(_logger, request.RequestId, deployment.Name, retry + 1, retries, wait.TotalMilliseconds);
                await Task.Delay(wait, _timeProvider, context.CancellationToken).ConfigureAwait(false);
                state.Retrying(deployment);
            }
        }

        return Outcome.FromResult(state.NoCandidateLeft());
    }

    /// <summary>
    /// How long to wait before trying the same deployment again, or null to fail over at once: a
    /// timeout or a failure the deployment would repeat is not retried, and neither is a deployment
    /// that asked for (or is cooling down for) longer than <c>maxRetryAfter</c>.
    /// </summary>
    private TimeSpan? RetryDelay(AttemptOutcome failed, int retry, RouteResilience resilience)
    {
        if (failed.Failure is not (AttemptFailure.Transport or AttemptFailure.ServerError or AttemptFailure.BadResponse or AttemptFailure.RateLimited))
        {
            return null;
        }

        var asked = failed.RetryAfter;
        if (failed.Failure == AttemptFailure.RateLimited && failed.Deployment!.State.CoolingRemaining is var cooling && cooling > (asked ?? TimeSpan.Zero))
        {
            asked = cooling;
        }

        if (asked is { } upstreamWait)
        {
            return upstreamWait <= resilience.MaxRetryAfter ? upstreamWait : null;
        }

        // Exponential from backoff, capped at maxBackoff, with "equal jitter": half fixed, half random.
        var delay = resilience.Backoff * Math.Pow(2, Math.Min(retry, 16));
        if (delay > resilience.MaxBackoff)
        {
            delay = resilience.MaxBackoff;
        }

        return delay * (0.5 + (Random.Shared.NextDouble() * 0.5));
    }

    // Null means the circuit refused the attempt (open, or a half-open probe already running): try the next one.
    // One async frame for the circuit, the timeout, the span and the bookkeeping: this runs for every attempt.
    private async ValueTask<AttemptOutcome?> RunInCircuitAsync(ResilienceContext context, AttemptState state, Deployment deployment, UpstreamRequest call)
    {
        var circuit = deployment.State.Circuit;
        if (!circuit.TryAcquire(out var isTest))
        {
            state.Skip(deployment, Exclusion.CircuitOpen, circuit.OpenRemaining);
            return null;
        }

        var started = _timeProvider.GetTimestamp();
        var activity = _tracing.StartAttempt(call.Request, deployment, state.Request.Attempts.Count + 1, call.IsContinuation);
        Outcome<AttemptOutcome> outcome;

        // Route objectives: while it waits for its first byte, the attempt is visible as a late sample in the making.
        var live = deployment.State.Latency.Live;
        var waiting = live.BeginWait(started);
        try
        {
            outcome = await circuit.Pipeline.ExecuteOutcomeAsync(
                static (ctx, args) => args.Executor.AttemptAsync(ctx, args.Call, args.Started),
                context,
                (Executor: this, Call: call, Started: started)).ConfigureAwait(false);
            if (outcome.Exception is OperationCanceledException && context.CancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(context.CancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
            // Cancelled: the client left, the deadline passed, or a hedge won. No verdict on the deployment.
            circuit.Release(isTest);
            activity?.SetTag("error.type", "cancelled");
            activity?.Stop();
            _metrics.AttemptCancelled(state.Request, deployment);
            throw;
        }
        finally
        {
            live.EndWait(waiting);
        }

        AttemptOutcome result;
        switch (outcome.Exception)
        {
            case null:
                result = outcome.Result!;
                break;
            case TimeoutRejectedException:
                var elapsed = _timeProvider.GetElapsedTime(started);
                deployment.State.Latency.Record(call.Request.Info.Stream ? elapsed : null, elapsed);
                if (call.Request.Info.Stream)
                {
                    // No first byte within the timeout: the TTFT was at least this.
                    ObjectiveRanking.Observe(call.Request, deployment, elapsed, _timeProvider);
                }

                result = AttemptOutcome.Failed(deployment, AttemptFailure.Timeout,
                    ApiError.GatewayTimeout($"The deployment did not answer within {Durations.Format(elapsed)}."), "first byte timeout", startedAt: started);
                break;
            default:
                result = AttemptOutcome.Failed(deployment, AttemptFailure.Transport, ApiError.BadGateway("The upstream connection failed."), outcome.Exception.Message, startedAt: started);
                break;
        }

        if (result.IsSuccess && call.Request.Info.Stream && result.FirstByteAt != 0)
        {
            // Measured at the first byte, not when the stream ends: a saturating box shows within its own TTFT.
            ObjectiveRanking.Observe(call.Request, deployment, _timeProvider.GetElapsedTime(started, result.FirstByteAt), _timeProvider);
        }

        circuit.Report(result.CountsAgainstHealth, isTest);
        Record(state, result, started);
        if (result.IsSuccess)
        {
            result.Activity = activity;
        }
        else
        {
            GatewayTracing.Failed(activity, result);
        }

        return result;
    }

    private void Record(AttemptState state, AttemptOutcome outcome, long started)
    {
        var deployment = outcome.Deployment!;
        var elapsed = _timeProvider.GetElapsedTime(started);
        state.Request.LastAttempted = deployment;
        state.Request.Attempts.Add(new AttemptRecord(deployment.Name, outcome.Failure, outcome.UpstreamStatus, elapsed, outcome.Detail));
        state.Attempted(deployment, outcome);
        deployment.State.Attempts.Increment();
        _metrics.Attempt(state.Request, deployment, outcome.Failure);
        if (!outcome.IsSuccess)
        {
            deployment.State.CountFailure();
            LogAttemptFailed(_logger, state.Request.RequestId, deployment.Name, outcome.Failure.ToString(), outcome.UpstreamStatus, outcome.Detail ?? string.Empty);
        }
    }

    private static TimeSpan FirstByteTimeout(GatewayRequest request, Deployment deployment)
    {
        var resilience = request.Route!.Resilience;
        if (!request.Info.Stream)
        {
            // A non-streamed answer arrives whole: its first byte is its last, so it gets the longer response timeout.
            return resilience.ResponseTimeout;
        }

        if (deployment.FirstTokenTimeout is { } own)
        {
            return own;
        }

        // A reasoning model thinks before its first token, for minutes at times: only a deadline its route
        // set on purpose cuts it short, not one meant for every route.
        return deployment.IsReasoningModel && !resilience.FirstTokenTimeoutSet ? resilience.ReasoningFirstTokenTimeout : resilience.FirstTokenTimeout;
    }

    /// <summary>
    /// Sends one health probe (a cheap request the deployment's adapter chose) and says whether the
    /// deployment answered as a healthy one does: any answer but a failure that counts against its
    /// circuit. A rate limit means it is alive; its cool-down is applied as for any 429.
    /// </summary>
    internal async ValueTask<(bool Healthy, string Detail)> ProbeAsync(UpstreamRequest call, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // A probe occupies a slot like any attempt, and its end gives one lease back: without a lease of its own it
        // would hand back a client request's, and the fleet would put one more request on a full box per probe.
        if (_fleet is not null && !await _fleet.TryLeaseAsync(call.Deployment, timeout, cancellationToken).ConfigureAwait(false))
        {
            return (false, "skipped: the fleet fills its capacity");
        }

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        try
        {
            context.Properties.Set(DeploymentCircuit.AttemptTimeout, timeout);
            var started = _timeProvider.GetTimestamp();
            var outcome = await call.Deployment.State.Circuit.Pipeline.ExecuteOutcomeAsync(
                static (ctx, args) => args.Executor.AttemptAsync(ctx, args.Call, args.Started),
                context,
                (Executor: this, Call: call, Started: started)).ConfigureAwait(false);
            switch (outcome.Exception)
            {
                case null:
                    var result = outcome.Result!;
                    await using (result.ConfigureAwait(false))
                    {
                        return (!result.CountsAgainstHealth, result.IsSuccess ? "answered" : result.Failure + ": " + result.Detail);
                    }

                case OperationCanceledException when cancellationToken.IsCancellationRequested:
                    throw new OperationCanceledException(cancellationToken);
                case TimeoutRejectedException:
                    return (false, "no answer within " + Durations.Format(timeout));
                default:
                    return (false, outcome.Exception.Message);
            }
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    // One attempt, from sending to the first byte. Failures are results, not exceptions.
    private async ValueTask<Outcome<AttemptOutcome>> AttemptAsync(ResilienceContext context, UpstreamRequest call, long started)
    {
        var cancellationToken = context.CancellationToken;
        var deployment = call.Deployment;
        var adapter = deployment.Provider.Adapter;
        deployment.State.Enter();
        deployment.State.Quota.Consume(call.Request.Decision is { } decision ? decision.EstimatedInputTokens + decision.ExpectedOutputTokens : 1);
        UpstreamResponse? response = null;
        var handedOver = false;
        try
        {
            response = await adapter.SendAsync(call, cancellationToken).ConfigureAwait(false);
            if (response.Refusal is { } refusal)
            {
                return Outcome.FromResult(AttemptOutcome.FromUpstream(deployment, refusal, started));
            }

            if (response.Failure != TransportFailure.None)
            {
                return Outcome.FromResult(response.Failure == TransportFailure.Timeout
                    ? AttemptOutcome.Failed(deployment, AttemptFailure.Timeout, ApiError.GatewayTimeout("The deployment did not answer in time."), response.FailureDetail ?? "timeout", startedAt: started)
                    : AttemptOutcome.Failed(deployment, AttemptFailure.Transport, ApiError.BadGateway("The deployment could not be reached."), response.FailureDetail ?? "connection failed", startedAt: started));
            }

            // Quotas: every answer, success or 429, may say what is left; a bare server says nothing and costs nothing here.
            var quota = adapter.ReadQuota(response);
            var status = response.StatusCode;
            if (!quota.IsEmpty)
            {
                deployment.State.Quota.Record(quota);
            }
            else if (status is >= 200 and <= 299)
            {
                deployment.State.Quota.Answered();
            }

            if (status is < 200 or > 299)
            {
                return Outcome.FromResult(await ClassifyErrorAsync(call, response, quota.IsEmpty, started, cancellationToken).ConfigureAwait(false));
            }

            var body = await response.GetBodyAsync(cancellationToken).ConfigureAwait(false);
            var outcome = call.PassThrough
                ? await PassThroughAsync(call, response, body, started, cancellationToken).ConfigureAwait(false)
                : await TranslateAsync(call, response, body, started, cancellationToken).ConfigureAwait(false);
            handedOver = outcome.IsSuccess;
            return Outcome.FromResult(outcome);
        }
        catch (Providers.Media.MediaFetchException ex)
        {
            // The client's URL was refused or would not download: the request's fault, not the deployment's
            // (its circuit does not count it), and no other candidate that needs bytes would do better.
            return Outcome.FromResult(AttemptOutcome.Failed(deployment, AttemptFailure.ClientError,
                ApiError.BadRequest(ex.Message, ex.Code, "messages"), "media URL: " + ex.Reason, startedAt: started));
        }
        catch (UpstreamErrorException ex)
        {
            // The adapter refused before sending (a client URL it may not fetch, a credential it could not get).
            return Outcome.FromResult(AttemptOutcome.FromUpstream(deployment, ex.Error, started));
        }
        catch (InvalidDataException ex)
        {
            return Outcome.FromResult(AttemptOutcome.Failed(deployment, AttemptFailure.BadResponse,
                ApiError.BadGateway("The deployment returned a response the gateway could not read.", "bad_upstream_response"), ex.Message, startedAt: started));
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException && !cancellationToken.IsCancellationRequested)
        {
            return Outcome.FromResult(AttemptOutcome.Failed(deployment, AttemptFailure.Transport, ApiError.BadGateway("The upstream connection failed."), ex.Message, startedAt: started));
        }
        finally
        {
            if (!handedOver)
            {
                deployment.State.Exit();
                if (response is not null)
                {
                    await response.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    // The client speaks the provider's wire: its events or body go on as they are, inspected on the way.
    private async ValueTask<AttemptOutcome> PassThroughAsync(UpstreamRequest call, UpstreamResponse response, Stream body, long started, CancellationToken cancellationToken)
    {
        var deployment = call.Deployment;
        var status = response.StatusCode;
        if (call.Stream && response.IsEventStream)
        {
            var events = new SseReader(body, _options.MaxUpstreamEventBytes);
            var first = await ReadFirstEventAsync(events, call.Request.Protocol.NamedEvents, cancellationToken).ConfigureAwait(false);
            if (first.Failure is { } failure)
            {
                events.Dispose();
                return AttemptOutcome.Failed(deployment, failure, first.Error!, first.Detail!, status, startedAt: started);
            }

            return AttemptOutcome.Streamed(deployment, response, events, first.Facts, started, _timeProvider.GetTimestamp());
        }

        var (buffer, length) = await ReadAllAsync(body, _options.MaxUpstreamResponseBytes, cancellationToken).ConfigureAwait(false);
        if (!call.Request.Protocol.TryInspectBody(buffer.AsSpan(0, length), out var facts) || (call.Stream && !facts.IsError))
        {
            ArrayPool<byte>.Shared.Return(buffer);
            var detail = call.Stream ? "a stream was asked for but the answer was not an event stream" : "the body is not valid JSON";
            return AttemptOutcome.Failed(deployment, AttemptFailure.BadResponse,
                ApiError.BadGateway("The deployment returned a response the gateway could not read.", "bad_upstream_response"), detail, status, startedAt: started);
        }

        if (facts.IsError)
        {
            var error = OpenAIErrors.InBand(buffer.AsSpan(0, length), deployment);
            ArrayPool<byte>.Shared.Return(buffer);
            return AttemptOutcome.FromUpstream(deployment, error, started);
        }

        return AttemptOutcome.Buffered(deployment, response, buffer, length, facts, started, _timeProvider.GetTimestamp());
    }

    // The provider speaks another wire: its answer is decoded into canonical events (streams) or a canonical answer.
    private async ValueTask<AttemptOutcome> TranslateAsync(UpstreamRequest call, UpstreamResponse response, Stream body, long started, CancellationToken cancellationToken)
    {
        var deployment = call.Deployment;
        var adapter = deployment.Provider.Adapter;
        if (call.Stream)
        {
            if (!response.IsEventStream)
            {
                return AttemptOutcome.Failed(deployment, AttemptFailure.BadResponse,
                    ApiError.BadGateway("The deployment returned a response the gateway could not read.", "bad_upstream_response"),
                    "a stream was asked for but the answer was not an event stream", response.StatusCode, startedAt: started);
            }

            var decoder = adapter.OpenStream(body, call);
            try
            {
                var (events, failure) = await ReadFirstContentAsync(decoder, call, started, cancellationToken).ConfigureAwait(false);
                if (failure is not null)
                {
                    decoder.Dispose();
                    return failure;
                }

                return AttemptOutcome.Decoded(deployment, response, decoder, events, started, _timeProvider.GetTimestamp());
            }
            catch
            {
                decoder.Dispose();
                throw;
            }
        }

        var (buffer, length) = await ReadAllAsync(body, _options.MaxUpstreamResponseBytes, cancellationToken).ConfigureAwait(false);
        try
        {
            if (call.Request.Operation == Operation.Embeddings)
            {
                var embeddings = adapter.ParseEmbeddings(buffer.AsSpan(0, length), call, out var embeddingError);
                return embeddingError is not null
                    ? AttemptOutcome.FromUpstream(deployment, embeddingError, started)
                    : AttemptOutcome.Embedded(deployment, response, embeddings, started, _timeProvider.GetTimestamp());
            }

            var answer = adapter.ParseResponse(buffer.AsSpan(0, length), call, out var error);
            return error is not null
                ? AttemptOutcome.FromUpstream(deployment, error, started)
                : AttemptOutcome.Translated(deployment, response, answer, started, _timeProvider.GetTimestamp());
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException("the body is not valid JSON: " + ex.Message, ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // Reads canonical events until the first one the client would see: errors before it still fail over.
    private async ValueTask<(StreamEvent[] Events, AttemptOutcome? Failure)> ReadFirstContentAsync(IStreamDecoder decoder, UpstreamRequest call, long started, CancellationToken cancellationToken)
    {
        var deployment = call.Deployment;
        var events = new List<StreamEvent>(4);
        while (true)
        {
            while (decoder.TryRead(out var e))
            {
                if (e.Kind == StreamEventKind.Error)
                {
                    return ([], AttemptOutcome.FromUpstream(deployment, e.Error!, started));
                }

                events.Add(e);
                if (e.IsContent)
                {
                    return ([.. events], null);
                }
            }

            if (decoder.IsComplete || !await decoder.FillAsync(cancellationToken).ConfigureAwait(false))
            {
                return ([], AttemptOutcome.Failed(deployment, AttemptFailure.BadResponse,
                    ApiError.BadGateway("The deployment closed the stream before sending anything.", "bad_upstream_response"), "stream ended before its first event", 200, startedAt: started));
            }
        }
    }

    private readonly record struct FirstEvent(ResponseFacts Facts, AttemptFailure? Failure, ApiError? Error, string? Detail);

    private static async ValueTask<FirstEvent> ReadFirstEventAsync(SseReader events, NamedEventInspector? named, CancellationToken cancellationToken)
    {
        if (!await events.ReadEventAsync(cancellationToken).ConfigureAwait(false))
        {
            return new(default, AttemptFailure.BadResponse, ApiError.BadGateway("The deployment closed the stream before sending anything.", "bad_upstream_response"), "stream ended before its first event");
        }

        if (named is not null)
        {
            if (!named.TryInspect(events.EventName, events.Data, out var first))
            {
                return new(default, AttemptFailure.BadResponse, ApiError.BadGateway("The deployment sent a malformed stream.", "bad_upstream_response"), "first event is not valid for the wire");
            }

            return first.IsError
                ? new(default, AttemptFailure.ServerError, ApiError.BadGateway("The deployment reported an error at the start of the stream."), "error event before the first chunk")
                : new(default, null, null, null);
        }

        if (events.IsDone || !ResponseInspector.TryInspect(events.Data, out var facts))
        {
            return new(default, AttemptFailure.BadResponse, ApiError.BadGateway("The deployment sent a malformed stream.", "bad_upstream_response"), "first event is not a JSON chunk");
        }

        if (facts.IsError)
        {
            return new(default, AttemptFailure.ServerError, ApiError.BadGateway("The deployment reported an error at the start of the stream."), "error event before the first chunk");
        }

        return new(facts, null, null, null);
    }

    // A non-2xx answer: the provider's adapter says what it means; a rate limit cools the deployment down.
    private async ValueTask<AttemptOutcome> ClassifyErrorAsync(UpstreamRequest call, UpstreamResponse response, bool saidNoQuota, long started, CancellationToken cancellationToken)
    {
        var deployment = call.Deployment;
        byte[]? buffer = null;
        var length = 0;
        try
        {
            var body = await response.GetBodyAsync(cancellationToken).ConfigureAwait(false);
            (buffer, length) = await ReadAllAsync(body, 64 * 1024, cancellationToken, truncate: true).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            // The status alone is enough to decide.
        }

        UpstreamError error;
        try
        {
            error = deployment.Provider.Adapter.Classify(response, buffer is null ? default : buffer.AsSpan(0, length), deployment);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        if (error.Kind == UpstreamErrorKind.RateLimited)
        {
            deployment.State.CoolDown(error.RetryAfter ?? TimeSpan.FromSeconds(1));
            _metrics.Throttled(deployment);
            if (saidNoQuota)
            {
                // No figures to read: the 429 itself is the lesson (quotas).
                deployment.State.Quota.Throttled(error.RetryAfter ?? TimeSpan.FromSeconds(1));
            }
        }

        return AttemptOutcome.FromUpstream(deployment, error, started);
    }

    /// <summary>Reads a whole body into a pooled buffer. Past <paramref name="limit"/> it throws, or cuts when <paramref name="truncate"/> is set.</summary>
    internal static async ValueTask<(byte[] Buffer, int Length)> ReadAllAsync(Stream stream, int limit, CancellationToken cancellationToken, bool truncate = false)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(4096, limit + 1));
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit + 1L, buffer.Length * 2L));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                // Room for one byte past the limit tells "exactly at the limit" from "over it".
                var room = (int)Math.Min(buffer.Length, limit + 1L) - length;
                var read = await stream.ReadAsync(buffer.AsMemory(length, room), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return (buffer, length);
                }

                length += read;
                if (length > limit)
                {
                    if (truncate)
                    {
                        return (buffer, limit);
                    }

                    throw new InvalidDataException($"The upstream response is larger than {limit} bytes.");
                }
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Request {RequestId}: attempt on {Deployment} failed ({Failure}, upstream status {UpstreamStatus}): {Detail}")]
    private static partial void LogAttemptFailed(ILogger logger, string requestId, string deployment, string failure, int upstreamStatus, string detail);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Error, Message = "Request {RequestId}: unexpected error while trying deployments")]
    private static partial void LogUnexpected(ILogger logger, string requestId, Exception exception);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Information, Message = "Request {RequestId}: retrying {Deployment} ({Retry} of {Retries}) in {WaitMs}ms")]
    private static partial void LogRetrying(ILogger logger, string requestId, string deployment, int retry, int retries, double waitMs);
}
