using ModelGateway.Configuration;

namespace ModelGateway.Routing;

/// <summary>Why a deployment was left out of a decision. The order is the order filters run in.</summary>
internal enum Exclusion : byte
{
    None,
    Operation,
    Tools,
    Vision,
    JsonSchema,
    RouteConstraint,
    KeyConstraint,

    /// <summary>The request names media by URL; the deployment needs the bytes and may not fetch them.</summary>
    MediaUrl,
    ContextWindow,
    MaxOutput,
    CircuitOpen,
    CoolingDown,
    RateLimited,
    AtCapacity,

    /// <summary>Quotas: what the provider says is left will not cover this request before its window resets.</summary>
    Quota,
}

/// <summary>Why the first candidate is first.</summary>
internal enum DecisionReason : byte
{
    Priority,
    Weighted,
    Cheapest,
    Fastest,
    LeastBusy,
    Balanced,
    SloMet,
    SloMissedFastest,
    Exploration,

    /// <summary>Route objective: the first misses a little more than allowed, and the route has misses to spare.</summary>
    SloSpendingMisses,

    /// <summary>Route objective: only deployments above <c>maxCostPer1k</c> are left.</summary>
    SloOverCostCap,

    /// <summary>Prefix affinity: the deployment that served the request's longest long prefix last, its cache still warm.</summary>
    Affinity,
}

/// <summary>One deployment as a decision saw it: what it would cost, how fast it is, and whether it may serve.</summary>
internal struct CandidateView
{
    public Deployment Deployment;
    public int Position;
    public Exclusion Exclusion;
    public long InputTokens;
    public long ContextLimit;
    public double Cost;
    public double LatencyMs;
    public double SloValueMs;
    public bool MeetsSlo;
    public int InFlight;
    public double Score;
    public long TieBreak;
    public TimeSpan Unavailable;

    /// <summary>Route objective: counted as meeting the target by spending the route's allowed misses.</summary>
    public bool SpendsMissBudget;

    /// <summary>Route objective: above <c>maxCostPer1k</c>, so a last resort.</summary>
    public bool OverCostCap;

    /// <summary>Eligible, but only by having the gateway fetch the request's media URLs: ranked after every candidate that takes them.</summary>
    public bool FetchesMedia;

    /// <summary>Live load signals: a fresh scrape says the server queues; ranked after every candidate that does not.</summary>
    public bool Queueing;

    /// <summary>Eligible, but tried only when no candidate without a reason to wait is left.</summary>
    public readonly bool Deferred => FetchesMedia || Queueing;
}

/// <summary>
/// The outcome of routing one request: candidates in the order they will be tried, and why.
/// The ranked array is the only allocation a decision makes on the hot path.
/// </summary>
internal sealed class RoutingDecision
{
    public required Deployment[] Ranked { get; init; }
    public required ModelRoute Route { get; init; }
    public required DecisionReason Reason { get; init; }
    public required int Considered { get; init; }
    public required int Eligible { get; init; }
    public required long EstimatedInputTokens { get; init; }
    public required int ExpectedOutputTokens { get; init; }
    public SloSettings? Slo { get; init; }

    /// <summary>When nothing is eligible: the furthest any candidate got, and its numbers.</summary>
    public Exclusion Blocking { get; init; }
    public long BlockingTokens { get; init; }
    public long BlockingLimit { get; init; }
    public TimeSpan BlockingRetryAfter { get; init; }

    /// <summary>Every candidate, ranked then excluded; only filled by <c>/v1/route/explain</c>.</summary>
    public CandidateView[]? Explained { get; init; }

    /// <summary>Prefix affinity: the deployment that served this prompt's longest remembered prefix last, and that prefix's estimated tokens.</summary>
    public Deployment? AffinityDeployment { get; init; }
    public int AffinityTokens { get; init; }
    public Routing.Affinity.AffinityOutcome AffinityOutcome { get; init; }

    private string? _reasonText;

    /// <summary>
    /// Why the first is first. On an objective route it also states each ranked candidate's live TTFT estimate
    /// (built once, when the reason header is written, not during the decision).
    /// </summary>
    public string ReasonText => _reasonText ??= Reason == DecisionReason.Affinity && AffinityDeployment is { } warm
        ? Routing.Affinity.AffinityText.Reason(AffinityTokens, warm.Name)
        : Slo?.Objective is { } objective
        ? Objectives.ObjectiveText.Reason(Describe("slo", Reason), Ranked, objective)
        : Describe(Slo is null ? Route.StrategyName : "slo", Reason);

    public static string Describe(string strategy, DecisionReason reason) => reason switch
    {
        DecisionReason.Priority => "priority: first eligible target",
        DecisionReason.Weighted => "weighted: picked by weight",
        DecisionReason.Cheapest => "cost: lowest estimated cost",
        DecisionReason.Fastest => "latency: lowest measured latency",
        DecisionReason.LeastBusy => "least-busy: fewest requests in flight",
        DecisionReason.Balanced => "balanced: best cost/latency score",
        DecisionReason.SloMet => "slo: cheapest deployment meeting the latency target",
        DecisionReason.SloMissedFastest => "slo: none meets the target; fastest",
        DecisionReason.Exploration => strategy + ": exploring a deployment with stale latency data",
        DecisionReason.SloSpendingMisses => "slo: cheapest deployment, spending the objective's allowed misses",
        DecisionReason.SloOverCostCap => "slo: only deployments above maxCostPer1k are left",
        DecisionReason.Affinity => "affinity: last served the prompt's prefix",
        _ => strategy,
    };

    public static string Describe(Exclusion exclusion) => exclusion switch
    {
        Exclusion.Operation => "does not serve this operation",
        Exclusion.Tools => "no tool support",
        Exclusion.Vision => "no image input support",
        Exclusion.JsonSchema => "no structured output (json_schema) support",
        Exclusion.RouteConstraint => "outside the route's allowed tiers, regions or tags",
        Exclusion.KeyConstraint => "outside the API key's allowed tiers, regions or tags",
        Exclusion.MediaUrl => "takes images and documents only inline (base64 or a data: URL), and fetching URLs is off for it (mediaFetch)",
        Exclusion.ContextWindow => "prompt and max_tokens exceed the context window",
        Exclusion.MaxOutput => "max_tokens exceeds the deployment's output limit",
        Exclusion.CircuitOpen => "circuit open after repeated failures",
        Exclusion.CoolingDown => "cooling down after the provider returned 429",
        Exclusion.RateLimited => "at its RPM/TPM limit",
        Exclusion.AtCapacity => "at its concurrency capacity",
        Exclusion.Quota => "the provider's quota will not cover the request before it resets",
        _ => "eligible",
    };
}
