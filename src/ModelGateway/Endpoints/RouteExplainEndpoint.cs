using System.Text.Json;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Routing;
using ModelGateway.Routing.Objectives;
using ModelGateway.State;
using ModelGateway.Wire;

namespace ModelGateway.Endpoints;

/// <summary>
/// <c>POST /v1/route/explain</c>: takes a chat request, calls no upstream, and shows the decision the
/// gateway would make: ranked candidates with estimated tokens, cost and live latency, and why each
/// excluded deployment was left out.
/// </summary>
internal sealed class RouteExplainEndpoint(RequestIntake intake, Router router, TimeProvider timeProvider)
{
    public async Task ExplainAsync(HttpContext context)
    {
        var operation = context.Request.Query["operation"].ToString() switch
        {
            "embeddings" => Operation.Embeddings,
            "completions" => Operation.Completions,
            _ => Operation.ChatCompletions,
        };
        using var request = new GatewayRequest(context, OpenAIChatProtocol.Instance, operation, context.TraceIdentifier, 0)
        {
            Caller = context.Features.Get<CallerIdentity>() ?? CallerIdentity.Anonymous,
        };
        if (await intake.AcceptAsync(request) is { } error)
        {
            await error.WriteAsync(context);
            return;
        }

        var decision = router.Decide(request, request.Route!, explain: true);
        context.Response.ContentType = "application/json";
        await using (var json = new Utf8JsonWriter(context.Response.BodyWriter, JsonOutput.Indented))
        {
            Write(json, request, decision, timeProvider.GetUtcNow());
        }

        await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    private static void Write(Utf8JsonWriter json, GatewayRequest request, RoutingDecision decision, DateTimeOffset now)
    {
        var route = decision.Route;
        json.WriteStartObject();
        json.WriteString("model", route.Name);
        json.WriteString("strategy", route.StrategyName);
        json.WriteString("decision", decision.Eligible > 0 ? decision.ReasonText : "no eligible deployment");
        json.WriteNumber("config_version", request.Catalog.Version);
        json.WriteNumber("estimated_input_tokens", decision.EstimatedInputTokens);
        json.WriteNumber("expected_output_tokens", decision.ExpectedOutputTokens);
        json.WriteBoolean("stream", request.Info.Stream);
        json.WriteNumber("media_urls", request.Info.MediaUrlCount);
        json.WriteStartArray("needs");
        foreach (var need in ModelsEndpoint.Names(Router.Needs(request.Operation, request.Info)))
        {
            json.WriteStringValue(need);
        }

        json.WriteEndArray();
        if (decision.Slo is { } slo)
        {
            json.WriteStartObject("slo");
            json.WriteString("metric", slo.Metric == LatencyMetric.Ttft ? "ttft" : "duration");
            json.WriteNumber("percentile", slo.Percentile);
            json.WriteNumber("target_ms", slo.Target.TotalMilliseconds);
            json.WriteBoolean("from_request_header", request.SloOverride is not null);
            if (slo.Objective is { } objective)
            {
                json.WriteStartObject("objective");
                if (objective.MaxCostPer1k is { } cap)
                {
                    json.WriteNumber("max_cost_per_1k_usd", cap);
                }

                json.WriteNumber("probe_interval_ms", objective.ProbeInterval.TotalMilliseconds);
                json.WriteNumber("allowed_miss_ratio", Math.Round(objective.AllowedMisses, 4));
                json.WriteNumber("miss_ratio", Math.Round(objective.Budget.Ratio, 4));
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }
        else
        {
            json.WriteNull("slo");
        }

        Routing.Affinity.AffinityText.WriteExplain(json, decision);
        json.WriteStartArray("candidates");
        var rank = 0;
        foreach (var view in decision.Explained!)
        {
            if (view.Exclusion != Exclusion.None)
            {
                continue;
            }

            rank++;
            json.WriteStartObject();
            json.WriteNumber("rank", rank);
            WriteDeployment(json, view, now);
            json.WriteNumber("estimated_cost_usd", Math.Round(view.Cost, 8));
            json.WriteNumber("score", double.IsNegativeInfinity(view.Score) ? -1 : Math.Round(view.Score, 8));
            if (decision.Slo is not null)
            {
                WriteMs(json, "slo_value_ms", view.SloValueMs);
                json.WriteBoolean("meets_slo", view.MeetsSlo);
                if (decision.Slo.Objective is { } objective)
                {
                    // The live estimate as of this answer: what the decision ranked by, give or take the microseconds since.
                    LiveEstimate.Of(view.Deployment, objective.Percentile, view.Deployment.State.Latency.Live.Now).Write(json, "live", decision.Slo.Target.TotalMilliseconds);
                    json.WriteBoolean("spends_miss_budget", view.SpendsMissBudget);
                    json.WriteBoolean("over_cost_cap", view.OverCostCap);
                }
            }

            if (view.Queueing)
            {
                // Live load signals: tried only after every candidate whose server is not queueing.
                json.WriteBoolean("queueing", true);
                json.WriteString("note", view.Deployment.State.Load.Reading is { } reading
                    ? Routing.Signals.LoadSignal.Describe(reading, now, view.Deployment.Metrics!)
                    : "queueing");
            }
            else if (view.FetchesMedia)
            {
                json.WriteBoolean("fetches_media_urls", true);
                json.WriteString("note", "needs images and documents inline: the gateway would fetch the request's URLs for it (mediaFetch), so it ranks after every deployment that takes URLs as they are");
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteStartArray("excluded");
        foreach (var view in decision.Explained!)
        {
            if (view.Exclusion == Exclusion.None)
            {
                continue;
            }

            json.WriteStartObject();
            WriteDeployment(json, view, now);
            json.WriteString("reason", Code(view.Exclusion));
            json.WriteString("detail", Detail(view, decision.ExpectedOutputTokens));
            json.WriteEndObject();
        }

        json.WriteEndArray();
        WriteCache(json, request, route);
        json.WriteEndObject();
    }

    // The route's response cache, and whether this request could be answered from a similar prompt (and why not).
    private static void WriteCache(Utf8JsonWriter json, GatewayRequest request, ModelRoute route)
    {
        if (route.Cache is not { } cache || request.Operation != Operation.ChatCompletions)
        {
            json.WriteNull("cache");
            return;
        }

        json.WriteStartObject("cache");
        json.WriteString("scope", cache.Scope.ToString().ToLowerInvariant());
        json.WriteNumber("ttl_seconds", (long)cache.Ttl.TotalSeconds);
        Canonical.ChatRequest? canonical;
        try
        {
            canonical = request.Canonical;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            // A request the canonical form cannot carry is served, just not cached.
            canonical = null;
        }

        if (cache.Semantic is { } semantic && canonical is not null)
        {
            json.WriteStartObject("semantic");
            json.WriteString("deployment", semantic.Deployment.Name);
            json.WriteNumber("threshold", semantic.Threshold);
            json.WriteBoolean("eligible", Caching.SemanticCache.Eligible(canonical, semantic));
            json.WriteString("detail", canonical.Tools.Count > 0 ? "requests with tools are answered by the exact cache only"
                : (canonical.Temperature ?? 1.0) > semantic.MaxTemperature ? $"temperature {canonical.Temperature?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "absent (counts as 1)"} is above maxTemperature {semantic.MaxTemperature.ToString(System.Globalization.CultureInfo.InvariantCulture)}"
                : !Caching.SemanticCache.Eligible(canonical, semantic) ? "requests with images or documents are answered by the exact cache only"
                : $"a stored prompt with a cosine similarity of at least {semantic.Threshold.ToString(System.Globalization.CultureInfo.InvariantCulture)} answers; the response says so in x-modelgateway-cache-similarity");
            json.WriteEndObject();
        }
        else
        {
            json.WriteNull("semantic");
        }

        json.WriteEndObject();
    }

    private static void WriteDeployment(Utf8JsonWriter json, in CandidateView view, DateTimeOffset now)
    {
        var deployment = view.Deployment;
        var state = deployment.State;
        json.WriteString("deployment", deployment.Name);
        json.WriteString("provider", deployment.Provider.Name);
        json.WriteString("tier", deployment.Tier.ToString().ToLowerInvariant());
        if (deployment.Region is not null)
        {
            json.WriteString("region", deployment.Region);
        }

        json.WriteNumber("estimated_input_tokens", view.InputTokens);
        if (deployment.KnownModel is { } known)
        {
            json.WriteString("known_model", known);
        }

        json.WriteStartObject("figures");
        ModelsEndpoint.WriteFigureValues(json, deployment);
        json.WriteEndObject();
        if (deployment.ContextWindow is { } window)
        {
            json.WriteNumber("context_window", window);
        }

        json.WriteNumber("in_flight", state.InFlight);
        if (deployment.Capacity is { } capacity)
        {
            json.WriteNumber("capacity", capacity);
        }

        json.WriteString("circuit", state.Circuit.Status.ToString().ToLowerInvariant());
        Routing.Signals.LoadJson.Write(json, deployment, now);
        var snapshot = state.Latency.Snapshot;
        json.WriteStartObject("latency");
        WriteMs(json, "ewma_ttft_ms", state.Latency.IsFresh ? state.Latency.EwmaTtftMs : double.NaN);
        WriteMs(json, "ewma_duration_ms", state.Latency.IsFresh ? state.Latency.EwmaDurationMs : double.NaN);
        WriteMs(json, "ttft_p50_ms", snapshot.TtftP50);
        WriteMs(json, "ttft_p90_ms", snapshot.TtftP90);
        WriteMs(json, "duration_p50_ms", snapshot.DurationP50);
        WriteMs(json, "duration_p90_ms", snapshot.DurationP90);
        json.WriteNumber("ttft_samples", snapshot.TtftSamples);
        json.WriteNumber("duration_samples", snapshot.DurationSamples);
        json.WriteEndObject();
    }

    private static void WriteMs(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsNaN(value))
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteNumber(name, Math.Round(value, 2));
        }
    }

    private static string Code(Exclusion exclusion) => exclusion switch
    {
        Exclusion.Operation => "operation_not_supported",
        Exclusion.Tools => "no_tools",
        Exclusion.Vision => "no_vision",
        Exclusion.JsonSchema => "no_json_schema",
        Exclusion.RouteConstraint => "route_constraint",
        Exclusion.KeyConstraint => "key_constraint",
        Exclusion.MediaUrl => "media_url_not_supported",
        Exclusion.ContextWindow => "context_length_exceeded",
        Exclusion.MaxOutput => "max_tokens_exceeded",
        Exclusion.CircuitOpen => "circuit_open",
        Exclusion.CoolingDown => "cooling_down",
        Exclusion.RateLimited => "rate_limited",
        Exclusion.Quota => "quota",
        _ => "at_capacity",
    };

    private static string Detail(in CandidateView view, int expectedOutput) => view.Exclusion switch
    {
        Exclusion.ContextWindow => $"needs {view.InputTokens} input tokens plus max_tokens; context window is {view.ContextLimit}",
        Exclusion.MaxOutput => $"max_tokens {view.InputTokens} exceeds the deployment's limit of {view.ContextLimit}",
        Exclusion.CircuitOpen or Exclusion.CoolingDown or Exclusion.RateLimited => $"{RoutingDecision.Describe(view.Exclusion)}; back in {Durations.Format(view.Unavailable)}",
        Exclusion.AtCapacity => $"{view.Deployment.State.InFlight} of {view.Deployment.Capacity} slots in use",
        Exclusion.Quota => view.Deployment.State.Quota.Describe(view.InputTokens + expectedOutput),
        _ => RoutingDecision.Describe(view.Exclusion),
    };
}
