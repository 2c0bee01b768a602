using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Routing.Affinity;

namespace ModelGateway.Routing;

/// <summary>Prefix affinity: the remembered deployment's bonus, weighed in the route strategy's own terms.</summary>
internal sealed partial class Router
{
    /// <summary>
    /// Milliseconds of prefill a warm prefix cache saves per prompt token, for the latency-ranked strategies: about
    /// 20,000 tokens a second of prefill, so a 3,200-token prefix is worth 160 ms of time to first token.
    /// </summary>
    public const double PrefillMsPerToken = 0.05;

    /// <summary>
    /// Looks the request's prefixes up and moves the deployment that served the longest of them last up
    /// its strategy's ranking by what its warm cache is worth. Only eligible candidates get the bonus, and a
    /// candidate missing the latency objective gets none: affinity never overrides health, capacity, quotas or the objective.
    /// </summary>
    private AffinityMatch ApplyAffinity(GatewayRequest request, ModelRoute route, AffinitySettings settings, Span<CandidateView> views, double maxCost, double maxLatency, bool explain)
    {
        var spans = PrefixSpans.Compute(request.Body, settings.Seed, settings.MinPrefixTokens);
        if (spans.Length == 0)
        {
            return default;
        }

        if (!explain)
        {
            request.Affinity = new AffinityTicket(affinity!, settings, spans);
        }

        var (name, tokens) = affinity!.Lookup(spans, timeProvider.GetTimestamp());
        if (name is null)
        {
            return new AffinityMatch(null, 0, AffinityOutcome.Miss);
        }

        var at = -1;
        for (var i = 0; i < views.Length; i++)
        {
            if (string.Equals(views[i].Deployment.Name, name, StringComparison.Ordinal))
            {
                at = i;
                break;
            }
        }

        if (at < 0)
        {
            // The route no longer lists it (a reload): as good as never served.
            return new AffinityMatch(null, 0, AffinityOutcome.Miss);
        }

        ref var remembered = ref views[at];
        if (remembered.Exclusion != Exclusion.None || remembered.Score >= MissedSlo)
        {
            return new AffinityMatch(remembered.Deployment, tokens, AffinityOutcome.Overridden);
        }

        var pricing = remembered.Deployment.Pricing;
        var saving = pricing.IsHourly ? 0 : tokens * Math.Max(0, pricing.InputPerToken - pricing.CacheReadPerToken);
        var prefillMs = tokens * PrefillMsPerToken;
        switch (route.Strategy)
        {
            case RoutingStrategyKind.Cost:
                // Its estimate assumed no cache hit; with the prefix cached it costs that much less.
                remembered.Score -= settings.Weight * saving;
                break;
            case RoutingStrategyKind.Latency:
                remembered.Score -= settings.Weight * prefillMs;
                break;
            case RoutingStrategyKind.Balanced:
                remembered.Score -= settings.Weight * (((maxCost > 0 ? saving / maxCost : 0) * route.CostWeight)
                    + ((maxLatency > 0 ? prefillMs / maxLatency : 0) * route.LatencyWeight));
                break;
            default:
                // Priority, weighted and least-busy have no price for a cache: the remembered deployment goes first among those meeting the objective.
                var best = double.PositiveInfinity;
                foreach (ref var view in views)
                {
                    if (view.Exclusion == Exclusion.None && view.Score < MissedSlo)
                    {
                        best = Math.Min(best, view.Score);
                    }
                }

                if (settings.Weight > 0)
                {
                    remembered.Score = Math.Min(remembered.Score, best - 1);
                }

                break;
        }

        // Equal after the bonus (self-hosted replicas priced by the hour, equally priced SaaS deployments): the warm one wins.
        remembered.TieBreak = -1;
        return new AffinityMatch(remembered.Deployment, tokens, AffinityOutcome.Hit);
    }

    /// <summary>What affinity found for a request: the remembered deployment and the shared prefix's length.</summary>
    private readonly record struct AffinityMatch(Deployment? Deployment, int Tokens, AffinityOutcome Outcome);
}
