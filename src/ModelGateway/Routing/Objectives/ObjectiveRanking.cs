using ModelGateway.Configuration;
using ModelGateway.Forwarding;

namespace ModelGateway.Routing.Objectives;

/// <summary>
/// How a route objective ranks candidates: each is judged on its predicted TTFT at the objective's percentile;
/// one that misses only a little may still serve while the route has misses to spare (they are spent where
/// they are cheapest); deployments above <c>maxCostPer1k</c> come last whatever their latency.
/// </summary>
internal static class ObjectiveRanking
{
    /// <summary>Score offset of a last resort: above every candidate that misses the target (<c>Router.MissedSlo</c> is 1e15).</summary>
    private const double LastResort = 1e17;

    /// <summary>Fills the candidate's objective verdict. Runs for every eligible candidate of every decision on an objective route.</summary>
    public static void Assess(ref CandidateView view, SloSettings slo, ObjectiveSettings objective, long now)
    {
        var estimate = LiveEstimate.Of(view.Deployment, objective.Percentile, now);
        var target = slo.Target.TotalMilliseconds;
        view.SloValueMs = estimate.PredictedMs;
        view.MeetsSlo = !estimate.IsKnown || estimate.PredictedMs <= target;
        view.SpendsMissBudget = false;
        view.OverCostCap = objective.MaxCostPer1k is { } cap && view.Cost * 1000 > cap;
        if (view.MeetsSlo || estimate.PredictedMs > estimate.EstimateMs || estimate.OldestWaitMs >= estimate.EstimateMs)
        {
            // Queueing or an attempt already late is not a small miss: the box is saturating, nothing to spend on it.
            return;
        }

        // A log-normal fitted over two regimes (fast, then slow) can put the share of misses low while the
        // percentile is far out: both must say "slightly" before a client request is spent on it.
        var allowed = objective.AllowedMisses;
        if (estimate.PredictedMs <= ObjectiveSettings.SpendLatencyFactor * target
            && estimate.Distribution.MissProbability(target) <= ObjectiveSettings.SpendFactor * allowed
            && objective.Budget.Ratio < allowed)
        {
            view.MeetsSlo = true;
            view.SpendsMissBudget = true;
        }
    }

    /// <summary>Moves deployments over the cost cap behind every other one; says why the first is first.</summary>
    public static DecisionReason Rank(Span<CandidateView> views, DecisionReason reason)
    {
        var best = -1;
        for (var i = 0; i < views.Length; i++)
        {
            ref var view = ref views[i];
            if (view.Exclusion != Exclusion.None)
            {
                continue;
            }

            if (view.OverCostCap)
            {
                view.Score = LastResort + view.Score;
            }

            if (best < 0 || view.Score < views[best].Score)
            {
                best = i;
            }
        }

        if (best < 0 || reason == DecisionReason.Exploration)
        {
            return reason;
        }

        ref readonly var first = ref views[best];
        return first.OverCostCap ? DecisionReason.SloOverCostCap
            : first.SpendsMissBudget ? DecisionReason.SloSpendingMisses
            : reason;
    }

    /// <summary>True when live data says the candidate misses: exploration must not spend a client request on it (probes re-measure it).</summary>
    public static bool KnownToMiss(in CandidateView view) => !view.MeetsSlo && !double.IsNaN(view.SloValueMs);

    /// <summary>
    /// A first byte arrived (or an attempt timed out waiting, <paramref name="ttft"/> then a lower bound): feeds the
    /// deployment's decayed estimate and, on an objective route, the route's miss ratio.
    /// </summary>
    public static void Observe(GatewayRequest request, Deployment deployment, TimeSpan ttft, TimeProvider timeProvider)
    {
        deployment.State.Latency.Live.Record(ttft);
        if (request.Route?.Slo is { Objective: { } objective } slo)
        {
            objective.Budget.Record(ttft > slo.Target, timeProvider.GetTimestamp(), timeProvider.TimestampFrequency);
        }
    }
}
