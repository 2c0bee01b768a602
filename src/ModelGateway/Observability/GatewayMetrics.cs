using System.Globalization;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Resilience;
using ModelGateway.Wire;

namespace ModelGateway.Observability;

/// <summary>Observability switches (section <c>Observability</c>).</summary>
public sealed class ObservabilityOptions
{
    public const string Section = "Observability";

    /// <summary>Label cost and rejections with the key's name and team. Off by default to keep cardinality bounded.</summary>
    public bool KeyLabels { get; set; }

    /// <summary>Record prompts and completions on traces. Off by default: they may hold personal data.</summary>
    public bool CaptureContent { get; set; }

    /// <summary>Write one access-log line per request.</summary>
    public bool AccessLog { get; set; } = true;

    /// <summary>Write logs to the console as compact JSON (turn off when only an OTLP exporter should receive them).</summary>
    public bool ConsoleLog { get; set; } = true;

    /// <summary>
    /// Export ASP.NET Core's own <c>http.server.*</c> metrics. Off by default: the gateway's <c>modelgateway.requests</c>
    /// and <c>gen_ai.client.operation.duration</c> already count every request, and the host's meter costs about 1% of
    /// a request's CPU when it is listened to.
    /// </summary>
    public bool HttpServerMetrics { get; set; }
}

/// <summary>
/// The gateway's metrics, through <see cref="IMeterFactory"/>: OpenTelemetry GenAI semantic
/// conventions where they apply (<c>gen_ai.client.token.usage</c>, <c>gen_ai.client.operation.duration</c>,
/// <c>gen_ai.server.time_to_first_token</c>, <c>gen_ai.server.time_per_output_token</c>) and
/// <c>modelgateway.*</c> for routing, failover, circuits, limits and spend. Tags are only built
/// when an instrument is being listened to.
/// </summary>
internal sealed class GatewayMetrics
{
    public const string MeterName = "ModelGateway";

    private static readonly double[] DurationBuckets = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
    private static readonly double[] TtftBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
    private static readonly double[] TpotBuckets = [0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5];
    private static readonly long[] TokenBuckets = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

    private readonly Histogram<long> _tokens;
    private readonly Counter<long> _tokenDetails;
    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _ttft;
    private readonly Histogram<double> _tpot;
    private readonly Counter<long> _requests;
    private readonly Counter<long> _attempts;
    private readonly Counter<long> _failovers;
    private readonly Counter<long> _hedges;
    private readonly Counter<long> _budgetExhausted;
    private readonly Counter<long> _rejections;
    private readonly Counter<double> _cost;
    private readonly Counter<long> _continuations;
    // Requests and streams in flight are plain counters read when metrics are collected: an UpDownCounter
    // would take the metrics aggregator's lookup twice per request for a number a scrape reads once.
    private long _active;
    private long _streams;
    private readonly Counter<long> _reloads;
    private readonly Counter<long> _authFailures;
    private readonly Counter<long> _dropped;
    private readonly bool _keyLabels;
    private Func<IEnumerable<Measurement<double>>>? _hourlyCosts;
    private Func<int>? _stateAvailable;

    public GatewayMetrics(IMeterFactory meterFactory, DeploymentStateRegistry states, IOptions<ObservabilityOptions> options, LogDropMonitor? logDrops = null)
    {
        _keyLabels = options.Value.KeyLabels;
        var meter = meterFactory.Create(MeterName);
        _tokens = meter.CreateHistogram("gen_ai.client.token.usage", "{token}", "Tokens used per request, by token type.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = TokenBuckets });
        _tokenDetails = meter.CreateCounter<long>("modelgateway.tokens.detail", "{token}",
            "Parts of input and output priced apart: prompt-cache reads and writes (part of input) and reasoning (part of output), by deployment and type.");
        _duration = meter.CreateHistogram("gen_ai.client.operation.duration", "s", "Duration of GenAI requests through the gateway.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _ttft = meter.CreateHistogram("gen_ai.server.time_to_first_token", "s", "Time from the attempt's start to the first streamed token.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = TtftBuckets });
        _tpot = meter.CreateHistogram("gen_ai.server.time_per_output_token", "s", "Time per output token after the first.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = TpotBuckets });
        _requests = meter.CreateCounter<long>("modelgateway.requests", "{request}", "Requests by route, deployment, provider, tier and status.");
        _attempts = meter.CreateCounter<long>("modelgateway.attempts", "{attempt}", "Upstream attempts by deployment and outcome.");
        _failovers = meter.CreateCounter<long>("modelgateway.failovers", "{failover}", "Moves to the next candidate after a failed attempt.");
        _hedges = meter.CreateCounter<long>("modelgateway.hedges", "{attempt}", "Hedged attempts started because the first was slow.");
        _continuations = meter.CreateCounter<long>("modelgateway.stream.continuations", "{stream}", "Broken streams continued on another deployment.");
        _budgetExhausted = meter.CreateCounter<long>("modelgateway.retry_budget.exhausted", "{retry}", "Retries refused because the retry budget was spent.");
        _rejections = meter.CreateCounter<long>("modelgateway.ratelimit.rejections", "{request}", "Requests refused by a rate limit or budget.");
        _cost = meter.CreateCounter<double>("modelgateway.cost", "{USD}", "Spend in US dollars, from deployment prices and reported usage.");
        meter.CreateObservableUpDownCounter("modelgateway.requests.active", () => Volatile.Read(ref _active), "{request}", "Requests in flight.");
        meter.CreateObservableUpDownCounter("modelgateway.streams.active", () => Volatile.Read(ref _streams), "{stream}", "Streams being relayed.");
        _reloads = meter.CreateCounter<long>("modelgateway.config.reloads", "{reload}", "Routing-file loads and reloads, by result.");
        _dropped = meter.CreateCounter<long>("modelgateway.translation.dropped", "{field}",
            "Client fields a translated request could not carry to its deployment, by client API and field.");
        _authFailures = meter.CreateCounter<long>("modelgateway.auth.failures", "{request}", "Requests refused before routing: no key, unknown, revoked or expired key.");
        meter.CreateObservableGauge("modelgateway.circuit.state", () => ObserveCircuits(states), "{state}", "Circuit per deployment: 0 closed, 1 half-open, 2 open.");
        meter.CreateObservableGauge("modelgateway.deployment.cost_per_hour", () => _hourlyCosts?.Invoke() ?? [], "{USD}",
            "The fixed hourly price of self-hosted deployments (pricing.perHour), which per-request cost does not include.");
        meter.CreateObservableGauge("modelgateway.state.available", () => _stateAvailable?.Invoke() ?? 1, "{state}",
            "1 while the shared state store (Redis) answers, 0 while the gateway serves degraded.");
        meter.CreateObservableGauge("modelgateway.deployment.in_flight", () => ObserveInFlight(states), "{request}", "Requests in flight per deployment.");
        meter.CreateObservableCounter("modelgateway.log.events.dropped", () => logDrops?.Dropped ?? 0, "{event}",
            "Log lines dropped because the console could not keep up (the gateway never waits for its log).");

        // Quotas.
        _throttled = meter.CreateCounter<long>("modelgateway.upstream.throttled", "{response}", "429s (and throttling errors) received from upstreams, by deployment.");
        meter.CreateObservableGauge("modelgateway.quota.remaining", () => ObserveQuotas(states), "{unit}",
            "What the provider last said is left of a deployment's quota, net of what was sent since, by deployment and unit (requests, tokens).");
    }

    /// <summary>Lets the hourly-cost gauge read the catalog serving now, without a dependency cycle.</summary>
    public void ObserveHourlyCosts(Func<IEnumerable<Measurement<double>>> costs) => _hourlyCosts = costs;

    public void ObserveStateStore(Func<int> available) => _stateAvailable = available;

    public void ConfigReloaded(bool succeeded) => _reloads.Add(1, new KeyValuePair<string, object?>("result", succeeded ? "applied" : "refused"));

    /// <summary>Counts each field a translation dropped (never a client's value, only the field's name).</summary>
    public void TranslationDropped(string api, List<string> fields)
    {
        if (_dropped.Enabled)
        {
            foreach (var field in fields)
            {
                _dropped.Add(1, new("api", api), new("field", DroppedLabel(field)));
            }
        }
    }

    // Field names come from the client: only known ones become label values, so cardinality stays bounded.
    private static readonly HashSet<string> KnownDropped = new(StringComparer.Ordinal)
    {
        "context_management", "output_config.effort", "output_config.task_budget", "thinking", "metadata.user_id", "tools.defer_loading",
        "service_tier", "container", "mcp_servers", "inference_geo", "logprobs", "top_logprobs", "logit_bias", "audio", "modalities",
        "prediction", "web_search_options", "seed", "n", "reasoning_effort", "presence_penalty/frequency_penalty", "temperature/top_p/top_k",
    };

    private static string DroppedLabel(string field)
        => KnownDropped.Contains(field) ? field
            : field.StartsWith("tools.", StringComparison.Ordinal) ? "tools.server_tool"
            : field.StartsWith("content.", StringComparison.Ordinal) ? "content.block"
            : "other";

    public void AuthenticationFailed(string reason) => _authFailures.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void RequestStarted() => Interlocked.Increment(ref _active);

    public void StreamStarted() => Interlocked.Increment(ref _streams);

    public void StreamEnded() => Interlocked.Decrement(ref _streams);

    public void Attempt(GatewayRequest request, Deployment deployment, AttemptFailure failure) => Attempt(request, deployment, Outcome(failure));

    /// <summary>An attempt stopped before it finished: a hedge lost, the client left, or the deadline passed.</summary>
    public void AttemptCancelled(GatewayRequest request, Deployment deployment) => Attempt(request, deployment, "cancelled");

    private void Attempt(GatewayRequest request, Deployment deployment, string outcome)
    {
        if (_attempts.Enabled)
        {
            _attempts.Add(1,
                new("route", request.Route?.Name),
                new("deployment", deployment.Name),
                new("provider", deployment.Provider.Name),
                new("outcome", outcome));
        }
    }

    public void Failover(string route, string? from)
    {
        if (_failovers.Enabled)
        {
            _failovers.Add(1, new("route", route), new("from_deployment", from));
        }
    }

    public void Hedge(string route)
    {
        if (_hedges.Enabled)
        {
            _hedges.Add(1, new KeyValuePair<string, object?>("route", route));
        }
    }

    public void RetryBudgetExhausted(string route) => _budgetExhausted.Add(1, new KeyValuePair<string, object?>("route", route));

    public void Rejected(string scope, string reason, GatewayRequest request)
    {
        if (!_rejections.Enabled)
        {
            return;
        }

        var tags = new TagList { { "scope", scope }, { "reason", reason }, { "route", request.Route?.Name } };
        if (_keyLabels)
        {
            tags.Add("key", request.Caller.Name);
        }

        _rejections.Add(1, tags);
    }

    /// <summary>Records the end of a request: status, latency, tokens and spend.</summary>
    public void RequestFinished(GatewayRequest request, double seconds)
    {
        Interlocked.Decrement(ref _active);

        // A request no deployment served is put on the last one that was tried, so failures show per deployment.
        var deployment = request.ServedBy ?? request.LastAttempted;
        if (_requests.Enabled)
        {
            _requests.Add(1,
                new("route", request.Route?.Name),
                new("deployment", deployment?.Name),
                new("provider", deployment?.Provider.Name),
                new("tier", deployment is null ? null : Tier(deployment.Tier)),
                new("status", StatusText(request.StatusCode)),
                new("api", request.Protocol.Api));
        }

        if (deployment is null)
        {
            return;
        }

        var operation = Operation(request.Operation);
        var system = deployment.Provider.Factory.SemanticName;
        if (_duration.Enabled)
        {
            var tags = new TagList
            {
                { "gen_ai.operation.name", operation },
                { "gen_ai.provider.name", system },
                { "gen_ai.request.model", request.Route?.Name },
                { "gen_ai.response.model", deployment.UpstreamModel },
                { "modelgateway.deployment", deployment.Name },
                { "modelgateway.provider", deployment.Provider.Name },
            };
            if (request.StatusCode >= 400 || !request.StreamCompleted)
            {
                tags.Add("error.type", request.ErrorCode ?? StatusText(request.StatusCode));
            }

            _duration.Record(seconds, tags);
        }

        if (request.StatusCode is < 200 or > 299 || request.ServedBy is null)
        {
            return;
        }

        if (_tokens.Enabled)
        {
            _tokens.Record(request.Usage.Input, TokenTags(operation, system, request, deployment, "input"));
            if (request.Operation != Wire.Operation.Embeddings)
            {
                _tokens.Record(request.Usage.Output, TokenTags(operation, system, request, deployment, "output"));
            }
        }

        if (_tokenDetails.Enabled)
        {
            // Kept apart from gen_ai.client.token.usage, whose input and output already include these parts.
            RecordDetail(request.Usage.CacheRead, "cache_read", deployment);
            RecordDetail(request.Usage.CacheWrite, "cache_write", deployment);
            RecordDetail(request.Usage.Reasoning, "reasoning", deployment);
        }

        if (request.FirstByteTimestamp != 0 && request.Info.Stream)
        {
            var ttft = request.TimeToFirstToken.TotalSeconds;
            if (_ttft.Enabled)
            {
                _ttft.Record(ttft, new("gen_ai.operation.name", operation), new("gen_ai.provider.name", system),
                    new("gen_ai.request.model", request.Route?.Name), new("modelgateway.deployment", deployment.Name), new("modelgateway.provider", deployment.Provider.Name));
            }

            if (_tpot.Enabled && request.Usage.Output > 1)
            {
                _tpot.Record(Math.Max(0, seconds - ttft) / (request.Usage.Output - 1), new("gen_ai.operation.name", operation), new("gen_ai.provider.name", system),
                    new("gen_ai.request.model", request.Route?.Name), new("modelgateway.deployment", deployment.Name), new("modelgateway.provider", deployment.Provider.Name));
            }
        }

        if (_cost.Enabled && request.Cost > 0)
        {
            var tags = new TagList { { "route", request.Route?.Name }, { "deployment", deployment.Name }, { "provider", deployment.Provider.Name } };
            if (_keyLabels)
            {
                tags.Add("key", request.Caller.Name);
                tags.Add("team", request.Caller.Team);
            }

            _cost.Add(request.Cost, tags);
        }

        if (request.Continued)
        {
            _continuations.Add(1, new KeyValuePair<string, object?>("route", request.Route?.Name));
        }
    }

    private void RecordDetail(long tokens, string type, Deployment deployment)
    {
        if (tokens > 0)
        {
            _tokenDetails.Add(tokens, new TagList { { "modelgateway.deployment", deployment.Name }, { "type", type } });
        }
    }

    private static TagList TokenTags(string operation, string system, GatewayRequest request, Deployment deployment, string type) => new()
    {
        { "gen_ai.operation.name", operation },
        { "gen_ai.provider.name", system },
        { "gen_ai.request.model", request.Route?.Name },
        { "gen_ai.response.model", deployment.UpstreamModel },
        { "gen_ai.token.type", type },
        { "modelgateway.deployment", deployment.Name },
        { "modelgateway.provider", deployment.Provider.Name },
    };

    private static IEnumerable<Measurement<int>> ObserveCircuits(DeploymentStateRegistry states)
    {
        foreach (var state in states.All)
        {
            yield return new Measurement<int>((int)state.Circuit.Status, new KeyValuePair<string, object?>("deployment", state.Name));
        }
    }

    private readonly Counter<long> _throttled;

    /// <summary>Quotas: the upstream answered 429 (or its throttling error).</summary>
    public void Throttled(Deployment deployment)
    {
        if (_throttled.Enabled)
        {
            _throttled.Add(1, new("deployment", deployment.Name), new("provider", deployment.Provider.Name));
        }
    }

    private static IEnumerable<Measurement<long>> ObserveQuotas(DeploymentStateRegistry states)
    {
        foreach (var state in states.All)
        {
            var (requests, tokens) = state.Quota.HeadroomNow();
            if (requests is { } r)
            {
                yield return new Measurement<long>(r, new("deployment", state.Name), new("unit", "requests"));
            }

            if (tokens is { } t)
            {
                yield return new Measurement<long>(t, new("deployment", state.Name), new("unit", "tokens"));
            }
        }
    }

    private static IEnumerable<Measurement<int>> ObserveInFlight(DeploymentStateRegistry states)
    {
        foreach (var state in states.All)
        {
            yield return new Measurement<int>(state.InFlight, new KeyValuePair<string, object?>("deployment", state.Name));
        }
    }

    /// <summary>The GenAI semantic-convention operation name.</summary>
    public static string Operation(Operation operation) => operation switch
    {
        Wire.Operation.ChatCompletions => "chat",
        Wire.Operation.Completions => "text_completion",
        _ => "embeddings",
    };

    private static string Tier(DeploymentTier tier) => tier switch
    {
        DeploymentTier.Iaas => "iaas",
        DeploymentTier.Paas => "paas",
        _ => "saas",
    };

    private static string Outcome(AttemptFailure failure) => failure switch
    {
        AttemptFailure.None => "success",
        AttemptFailure.Transport => "transport_error",
        AttemptFailure.Timeout => "timeout",
        AttemptFailure.ServerError => "server_error",
        AttemptFailure.RateLimited => "rate_limited",
        AttemptFailure.BadResponse => "bad_response",
        AttemptFailure.Misconfigured => "misconfigured",
        AttemptFailure.ContextLength => "context_length",
        AttemptFailure.ContentFilter => "content_filter",
        AttemptFailure.ClientError => "client_error",
        _ => "unavailable",
    };

    private static readonly string[] StatusTexts = CreateStatusTexts();

    private static string[] CreateStatusTexts()
    {
        var texts = new string[600];
        for (var i = 0; i < texts.Length; i++)
        {
            texts[i] = i.ToString(CultureInfo.InvariantCulture);
        }

        return texts;
    }

    /// <summary>A cached string for a status code, so tags allocate nothing.</summary>
    public static string StatusText(int status) => status is >= 0 and < 600 ? StatusTexts[status] : "other";
}
