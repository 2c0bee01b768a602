using System.Buffers;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Resilience;
using ModelGateway.Routing.Affinity;
using ModelGateway.State;
using ModelGateway.Wire;

namespace ModelGateway.Routing;

/// <summary>
/// Picks, for one request, the order in which a route's deployments will be tried. Filters by what
/// the request needs (operation, tools, images, media URLs, structured output, context window), by route and
/// key constraints, and by live health (circuit, 429 cool-down, RPM/TPM, capacity); then ranks by
/// the route's strategy and latency objective. Pure and lock-free: no I/O, no waiting, and no
/// allocation beyond the result (routes with prefix affinity on also hash the prompt's prefixes).
/// </summary>
internal sealed partial class Router(TokenEstimator tokens, TimeProvider timeProvider, PrefixAffinity? affinity = null)
{
    /// <summary>Score given to candidates that miss a latency objective, so they rank after every one that meets it.</summary>
    private const double MissedSlo = 1e15;

    private const double GoldenRatio = 0.6180339887498949;

    public RoutingDecision Decide(GatewayRequest request, ModelRoute route, bool explain = false)
    {
        var targets = route.IsAuto ? request.Catalog.DeploymentList : route.Targets;
        var count = targets.Length;
        var views = ArrayPool<CandidateView>.Shared.Rent(Math.Max(count, 1));
        try
        {
            return Decide(request, route, targets, views.AsSpan(0, count), explain);
        }
        finally
        {
            ArrayPool<CandidateView>.Shared.Return(views);
        }
    }

    private RoutingDecision Decide(GatewayRequest request, ModelRoute route, Deployment[] targets, Span<CandidateView> views, bool explain)
    {
        ref readonly var info = ref request.Info;
        var needs = Needs(request.Operation, info);
        var counter = route.Counters.Next();
        var estimate = TokenEstimator.Estimate(info);
        var expectedOutput = info.MaxTokens is { } maxTokens
            ? info.MaxTokensIsCeiling ? Math.Min(maxTokens, route.ExpectedOutputTokens) : maxTokens
            : route.ExpectedOutputTokens;
        var slo = EffectiveSlo(route, request);
        var caller = request.Caller;
        var now = timeProvider.GetTimestamp();

        var eligible = 0;
        var furthest = Exclusion.None;
        var furthestStage = -1;
        long blockingTokens = 0;
        long blockingLimit = 0;
        var blockingRetry = TimeSpan.MaxValue;
        double maxCost = 0;
        double maxLatency = 0;

        // Ties rotate with the decision counter, so equal candidates share the load.
        var rotation = (int)(counter % views.Length);
        for (var i = 0; i < views.Length; i++)
        {
            ref var view = ref views[i];
            var deployment = targets[i];
            view.Deployment = deployment;
            view.Position = i;
            view.InputTokens = estimate;
            view.TieBreak = i >= rotation ? i - rotation : i + views.Length - rotation;
            view.FetchesMedia = false;
            view.Queueing = false;
            view.Exclusion = Check(request, route, caller, deployment, needs, now, ref view);
            if (view.Exclusion == Exclusion.None && deployment.State.Quota.Blocks(now, view.InputTokens + expectedOutput, out var quotaWait))
            {
                // Quotas: the provider said what is left; sending more before its reset only earns a 429.
                view.Exclusion = Exclusion.Quota;
                view.Unavailable = quotaWait;
            }

            if (view.Exclusion != Exclusion.None)
            {
                var stage = Stage(view.Exclusion);
                if (stage > furthestStage || (stage == furthestStage && view.Exclusion == Exclusion.ContextWindow && view.ContextLimit > blockingLimit))
                {
                    furthestStage = stage;
                    furthest = view.Exclusion;
                    if (view.Exclusion is Exclusion.ContextWindow or Exclusion.MaxOutput)
                    {
                        blockingTokens = view.InputTokens;
                        blockingLimit = view.ContextLimit;
                    }
                }

                if (stage == 3 && view.Unavailable < blockingRetry)
                {
                    blockingRetry = view.Unavailable;
                }

                continue;
            }

            eligible++;
            view.Queueing = deployment.Metrics is { } loadMetrics && Signals.LoadGate.IsQueueing(deployment.State.Load, loadMetrics, timeProvider.GetUtcNow());
            view.InFlight = deployment.State.InFlight;
            view.Cost = EstimateCost(deployment, view.InputTokens, expectedOutput);
            view.LatencyMs = Objectives.LiveTtft.WithLate(Latency(deployment, info.Stream, now), deployment.State.Latency.Live.OldestWaitSeenMs);
            if (slo?.Objective is { } objective)
            {
                Objectives.ObjectiveRanking.Assess(ref view, slo, objective, now);
            }
            else if (slo is not null)
            {
                view.SloValueMs = deployment.State.Latency.SnapshotAt(now).Get(slo.Metric, slo.Percentile);
                view.MeetsSlo = double.IsNaN(view.SloValueMs) || view.SloValueMs <= slo.Target.TotalMilliseconds;
            }

            maxCost = Math.Max(maxCost, view.Cost);
            maxLatency = Math.Max(maxLatency, double.IsNaN(view.LatencyMs) ? 0 : view.LatencyMs);
        }

        var reason = Score(route, views, counter, slo, maxCost, maxLatency);
        var match = route.Affinity is { } affinitySettings && affinity is not null && eligible > 0
            ? ApplyAffinity(request, route, affinitySettings, views, maxCost, maxLatency, explain)
            : default;
        var best = -1;
        if (eligible > 0 && ShouldExplore(route, slo, counter))
        {
            best = Explore(views, slo?.Objective is not null);
            if (best >= 0)
            {
                views[best].Score = double.NegativeInfinity;
                reason = DecisionReason.Exploration;
            }
        }

        if (slo?.Objective is not null && eligible > 0)
        {
            reason = Objectives.ObjectiveRanking.Rank(views, reason);
        }

        var take = explain ? eligible : Math.Min(eligible, RankLimit(route));
        var ranked = take == 0 ? [] : new Deployment[take];
        CandidateView[]? explained = null;
        if (explain)
        {
            explained = Explain(views);
            for (var i = 0; i < take; i++)
            {
                ranked[i] = explained[i].Deployment;
            }
        }
        else if (take > 0)
        {
            SelectTop(views, ranked);
        }

        if (match.Outcome == AffinityOutcome.Hit)
        {
            if (ReferenceEquals(ranked[0], match.Deployment))
            {
                reason = DecisionReason.Affinity;
            }
            else
            {
                match = match with { Outcome = AffinityOutcome.Overridden };
            }
        }

        if (!explain)
        {
            affinity?.Count(route.Name, match.Outcome);
        }

        return new RoutingDecision
        {
            Ranked = ranked,
            Route = route,
            Reason = reason,
            Considered = views.Length,
            Eligible = eligible,
            EstimatedInputTokens = estimate,
            ExpectedOutputTokens = expectedOutput,
            Slo = slo,
            Blocking = eligible == 0 ? furthest : Exclusion.None,
            BlockingTokens = blockingTokens,
            BlockingLimit = blockingLimit,
            BlockingRetryAfter = blockingRetry == TimeSpan.MaxValue ? TimeSpan.Zero : blockingRetry,
            Explained = explained,
            AffinityDeployment = match.Deployment,
            AffinityTokens = match.Tokens,
            AffinityOutcome = match.Outcome,
        };
    }

    /// <summary>What a request needs from a deployment, as capability flags.</summary>
    public static Capabilities Needs(Operation operation, in RequestInfo info)
    {
        var needs = operation switch
        {
            Operation.ChatCompletions => Capabilities.Chat,
            Operation.Completions => Capabilities.Completions,
            _ => Capabilities.Embeddings,
        };
        if (info.HasTools)
        {
            needs |= Capabilities.Tools;
        }

        if (info.ImageCount > 0)
        {
            needs |= Capabilities.Vision;
        }

        if (info.ResponseFormat == ResponseFormatKind.JsonSchema)
        {
            needs |= Capabilities.JsonSchema;
        }

        return needs;
    }

    private Exclusion Check(GatewayRequest request, ModelRoute route, CallerIdentity caller, Deployment deployment, Capabilities needs, long now, ref CandidateView view)
    {
        if (request.PinnedDeployment is { } pinned && !string.Equals(pinned, deployment.Name, StringComparison.Ordinal))
        {
            // The request's state lives on one deployment (a pass-through Responses follow-up): only it can serve.
            return Exclusion.RouteConstraint;
        }

        var missing = needs & ~deployment.Capabilities;
        if (missing != Capabilities.None)
        {
            return (missing & (Capabilities.Chat | Capabilities.Completions | Capabilities.Embeddings)) != 0 ? Exclusion.Operation
                : (missing & Capabilities.Tools) != 0 ? Exclusion.Tools
                : (missing & Capabilities.Vision) != 0 ? Exclusion.Vision
                : Exclusion.JsonSchema;
        }

        if (!Allowed(deployment, route.AllowedTiers, route.AllowedRegions, route.RequiredTags))
        {
            return Exclusion.RouteConstraint;
        }

        if (caller.HasDeploymentConstraints && !Allowed(deployment, caller.AllowedTiers, caller.AllowedRegions, caller.RequiredTags))
        {
            return Exclusion.KeyConstraint;
        }

        ref readonly var info = ref request.Info;
        if (info.MediaUrlCount > 0 && !deployment.TakesMediaUrls)
        {
            // A deployment that needs bytes serves a URL only if its admin let the gateway fetch it, and then only
            // after every deployment that takes the URL as it is: no fetch is the safest fetch.
            if (deployment.MediaFetch is null)
            {
                return Exclusion.MediaUrl;
            }

            view.FetchesMedia = true;
        }

        if (info.MaxTokens is { } maxTokens && deployment.MaxOutputTokens is { } maxOutput && maxTokens > maxOutput && !info.MaxTokensIsCeiling)
        {
            view.ContextLimit = maxOutput;
            view.InputTokens = maxTokens;
            return Exclusion.MaxOutput;
        }

        if (deployment.ContextWindow is { } window && request.Operation != Operation.Embeddings)
        {
            // The cheap upper bound settles most requests; the tokenizer runs only near the limit.
            // A ceiling is clamped to the deployment's output limit before it is sent, so only that much is reserved.
            var reserved = info.MaxTokensIsCeiling && info.MaxTokens is { } ceiling ? Math.Min(ceiling, deployment.MaxOutputTokens ?? ceiling) : info.MaxTokens ?? 1;
            var budget = window - (long)reserved;
            if (TokenEstimator.UpperBound(info) > budget)
            {
                var exact = tokens.Count(request, deployment.Tokenizer);
                view.InputTokens = exact;
                if (exact > budget)
                {
                    view.ContextLimit = window;
                    return Exclusion.ContextWindow;
                }
            }
        }

        var state = deployment.State;
        if (state.Circuit.StatusAt(now) == CircuitStatus.Open)
        {
            view.Unavailable = state.Circuit.OpenRemainingAt(now);
            return Exclusion.CircuitOpen;
        }

        var cooling = state.CoolingRemainingAt(now);
        if (cooling > TimeSpan.Zero)
        {
            view.Unavailable = cooling;
            return Exclusion.CoolingDown;
        }

        var limited = state.LimitedRemainingAt(now);
        if (limited > TimeSpan.Zero)
        {
            view.Unavailable = limited;
            return Exclusion.RateLimited;
        }

        if (deployment.Capacity is { } capacity && state.InFlight >= capacity)
        {
            view.Unavailable = TimeSpan.FromSeconds(1);
            return Exclusion.AtCapacity;
        }

        return Exclusion.None;
    }

    private static bool Allowed(Deployment deployment, DeploymentTier[]? tiers, string[]? regions, string[]? tags)
    {
        if (tiers is not null && Array.IndexOf(tiers, deployment.Tier) < 0)
        {
            return false;
        }

        if (regions is not null && (deployment.Region is null || Array.IndexOf(regions, deployment.Region) < 0))
        {
            return false;
        }

        if (tags is not null)
        {
            foreach (var tag in tags)
            {
                if (Array.IndexOf(deployment.Tags, tag) < 0)
                {
                    return false;
                }
            }
        }

        return true;
    }

    // 0: the deployment cannot do it; 1: it may not; 2: the request does not fit (as sent); 3: it is busy or unwell right now.
    private static int Stage(Exclusion exclusion) => exclusion switch
    {
        Exclusion.Operation or Exclusion.Tools or Exclusion.Vision or Exclusion.JsonSchema => 0,
        Exclusion.RouteConstraint or Exclusion.KeyConstraint => 1,
        Exclusion.ContextWindow or Exclusion.MaxOutput or Exclusion.MediaUrl => 2,
        _ => 3,
    };

    /// <summary>USD for this request; a self-hosted deployment priced by the hour costs nothing more per request while it has room.</summary>
    public static double EstimateCost(Deployment deployment, long inputTokens, long outputTokens)
        => deployment.Pricing.IsHourly ? 0 : deployment.Pricing.Cost(inputTokens, outputTokens);

    /// <summary>EWMA time to first token for streams, total duration otherwise; NaN when unknown or stale.</summary>
    public static double Latency(Deployment deployment, bool stream, long now)
    {
        var tracker = deployment.State.Latency;
        if (!tracker.IsFreshAt(now))
        {
            return double.NaN;
        }

        var primary = stream ? tracker.EwmaTtftMs : tracker.EwmaDurationMs;
        return double.IsNaN(primary) ? (stream ? tracker.EwmaDurationMs : tracker.EwmaTtftMs) : primary;
    }

    private static SloSettings? EffectiveSlo(ModelRoute route, GatewayRequest request)
    {
        if (request.SloOverride is not { } target)
        {
            return route.Slo;
        }

        // The header names a time-to-first-token target, whatever the route's own objective measures.
        if (route.Slo is { Objective: not null } objective)
        {
            return objective with { Target = target };
        }

        return new SloSettings(LatencyMetric.Ttft, route.Slo?.Percentile ?? 90, target, AllowRequestOverride: true);
    }

    private static DecisionReason Score(ModelRoute route, Span<CandidateView> views, long counter, SloSettings? slo, double maxCost, double maxLatency)
    {
        DecisionReason reason;
        switch (route.Strategy)
        {
            case RoutingStrategyKind.Weighted:
                reason = DecisionReason.Weighted;
                PickWeighted(route, views, counter);
                break;
            case RoutingStrategyKind.Cost:
                reason = DecisionReason.Cheapest;
                foreach (ref var view in views)
                {
                    view.Score = view.Cost;
                }

                break;
            case RoutingStrategyKind.Latency:
                reason = DecisionReason.Fastest;
                foreach (ref var view in views)
                {
                    view.Score = double.IsNaN(view.LatencyMs) ? 0 : view.LatencyMs;
                }

                break;
            case RoutingStrategyKind.LeastBusy:
                reason = DecisionReason.LeastBusy;
                foreach (ref var view in views)
                {
                    view.Score = view.Deployment.Capacity is { } capacity ? view.InFlight / (double)capacity : view.InFlight;
                }

                break;
            case RoutingStrategyKind.Balanced:
                reason = DecisionReason.Balanced;
                foreach (ref var view in views)
                {
                    var cost = maxCost > 0 ? view.Cost / maxCost : 0;
                    var latency = maxLatency > 0 && !double.IsNaN(view.LatencyMs) ? view.LatencyMs / maxLatency : 0;
                    view.Score = (route.CostWeight * cost) + (route.LatencyWeight * latency);
                }

                break;
            default:
                reason = DecisionReason.Priority;
                foreach (ref var view in views)
                {
                    view.Score = view.Position;
                }

                break;
        }

        if (slo is null)
        {
            return reason;
        }

        var anyMeets = false;
        foreach (ref var view in views)
        {
            if (view.Exclusion != Exclusion.None)
            {
                continue;
            }

            if (view.MeetsSlo)
            {
                anyMeets = true;
            }
            else
            {
                view.Score = MissedSlo + (double.IsNaN(view.SloValueMs) ? 0 : view.SloValueMs);
            }
        }

        return anyMeets ? DecisionReason.SloMet : DecisionReason.SloMissedFastest;
    }

    // A low-discrepancy sequence spreads picks by weight evenly and deterministically, without a lock.
    private static void PickWeighted(ModelRoute route, Span<CandidateView> views, long counter)
    {
        double total = 0;
        double takers = 0;
        foreach (ref var view in views)
        {
            view.Score = view.Position;
            if (view.Exclusion == Exclusion.None)
            {
                var weight = Weight(route, view.Position);
                total += weight;
                takers += view.Deferred ? 0 : weight;
            }
        }

        // Deployments that would need the gateway to fetch the request's URLs draw only when nobody else can serve.
        var skipFetchers = takers > 0;
        total = skipFetchers ? takers : total;
        if (total <= 0)
        {
            return;
        }

        var point = (counter * GoldenRatio % 1.0) * total;
        foreach (ref var view in views)
        {
            if (view.Exclusion != Exclusion.None || (skipFetchers && view.Deferred))
            {
                continue;
            }

            point -= Weight(route, view.Position);
            if (point < 0)
            {
                view.Score = -1;
                return;
            }
        }
    }

    private static double Weight(ModelRoute route, int position) => route.IsAuto || position >= route.Weights.Length ? 1 : route.Weights[position];

    private static bool ShouldExplore(ModelRoute route, SloSettings? slo, long counter)
    {
        if (route.Exploration <= 0 || (slo is null && route.Strategy is not (RoutingStrategyKind.Latency or RoutingStrategyKind.Balanced)))
        {
            return false;
        }

        var period = Math.Max(2, (long)Math.Round(1 / route.Exploration));
        return counter % period == 0;
    }

    // The eligible candidate measured longest ago (or never), unless it would be first anyway.
    // On an objective route, never a deployment known to miss the target (probes re-measure those, not client requests), nor one over the cost cap.
    // With an objective, never one dearer than the current first either, nor a queueing box: probes keep every target
    // measured, so exploring those would only spend money or first tokens the objective does not ask for.
    private static int Explore(Span<CandidateView> views, bool objective)
    {
        var current = -1;
        for (var i = 0; i < views.Length; i++)
        {
            ref var view = ref views[i];
            if (view.Exclusion == Exclusion.None && !view.Deferred && (current < 0 || Better(view, views[current])))
            {
                current = i;
            }
        }

        var stalest = -1;
        var stalestAt = long.MaxValue;
        for (var i = 0; i < views.Length; i++)
        {
            ref var view = ref views[i];
            if (view.Exclusion != Exclusion.None || view.Deferred)
            {
                continue;
            }

            if (objective && (view.OverCostCap || view.Queueing || Objectives.ObjectiveRanking.KnownToMiss(view) || view.Cost > views[current].Cost))
            {
                continue;
            }

            var at = view.Deployment.State.Latency.LastSampleAt;
            if (at < stalestAt)
            {
                stalestAt = at;
                stalest = i;
            }
        }

        return stalest == current ? -1 : stalest;
    }

    // Whoever takes the request's media URLs as they are comes before whoever would need them fetched, whatever the scores.
    private static bool Better(in CandidateView a, in CandidateView b)
        => a.Deferred != b.Deferred ? !a.Deferred : a.Score < b.Score || (a.Score == b.Score && a.TieBreak < b.TieBreak);

    // Keeps the best few in order in one pass: failover rarely needs more than three or four.
    private static void SelectTop(Span<CandidateView> views, Deployment[] ranked)
    {
        Span<int> top = stackalloc int[ranked.Length];
        var filled = 0;
        for (var i = 0; i < views.Length; i++)
        {
            if (views[i].Exclusion != Exclusion.None)
            {
                continue;
            }

            if (filled == top.Length && !Better(views[i], views[top[filled - 1]]))
            {
                continue;
            }

            var at = filled < top.Length ? filled++ : filled - 1;
            while (at > 0 && Better(views[i], views[top[at - 1]]))
            {
                top[at] = top[at - 1];
                at--;
            }

            top[at] = i;
        }

        for (var i = 0; i < ranked.Length; i++)
        {
            ranked[i] = views[top[i]].Deployment;
        }
    }

    private static int RankLimit(ModelRoute route)
        => Math.Max(route.Resilience.MaxAttempts, route.Resilience.Hedging?.MaxAttempts ?? 0) + 2;

    private static CandidateView[] Explain(Span<CandidateView> views)
    {
        var all = views.ToArray();
        Array.Sort(all, static (a, b) =>
        {
            if ((a.Exclusion == Exclusion.None) != (b.Exclusion == Exclusion.None))
            {
                return a.Exclusion == Exclusion.None ? -1 : 1;
            }

            if (a.Exclusion != Exclusion.None)
            {
                return a.Position.CompareTo(b.Position);
            }

            return Better(a, b) ? -1 : Better(b, a) ? 1 : 0;
        });
        return all;
    }
}
