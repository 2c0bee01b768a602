using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Routing;
using ModelGateway.State;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Tests.Routing;

/// <summary>Each strategy and filter decides as documented, on deterministic inputs.</summary>
public sealed class RouterTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
    private readonly Router _router;

    public RouterTests() => _router = new Router(new TokenEstimator(), _time);

    private Deployment D(string name, double input = 1, double output = 1, DeploymentTier tier = DeploymentTier.Saas, Capabilities capabilities = Capabilities.Chat,
        int? context = null, double perHour = 0, int? capacity = null, string? region = null, string[]? tags = null, int? maxOutput = null)
        => TestDeployments.Create(name, time: _time, tier: tier, capabilities: capabilities, contextWindow: context, inputPrice: input, outputPrice: output,
            perHour: perHour, capacity: capacity, region: region, tags: tags, latencyWindow: TimeSpan.FromMinutes(1), maxOutputTokens: maxOutput);

    private static ModelRoute Route(RoutingStrategyKind strategy, Deployment[] targets, double[]? weights = null, SloSettings? slo = null,
        DeploymentTier[]? tiers = null, string[]? regions = null, string[]? tags = null, double exploration = 0, double costWeight = 0.5, double latencyWeight = 0.5) => new()
    {
        Name = "route",
        Description = null,
        Strategy = strategy,
        StrategyName = strategy.ToString().ToLowerInvariant(),
        Targets = targets,
        Weights = weights ?? targets.Select(_ => 1.0).ToArray(),
        Slo = slo,
        CostWeight = costWeight,
        LatencyWeight = latencyWeight,
        Exploration = exploration,
        ExpectedOutputTokens = 256,
        AllowedTiers = tiers,
        AllowedRegions = regions,
        RequiredTags = tags,
        Resilience = new RouteResilience(3, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(5),
            TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(10), TimeSpan.Zero, null, false),
        IsAuto = false,
    };

    private static GatewayRequest Request(string? body = null, Operation operation = Operation.ChatCompletions, CallerIdentity? caller = null)
    {
        body ??= """{"model":"route","messages":[{"role":"user","content":"Hello there"}]}""";
        var bytes = Encoding.UTF8.GetBytes(body);
        var request = new GatewayRequest(new DefaultHttpContext(), OpenAIChatProtocol.Instance, operation, "test", 0) { Caller = caller ?? CallerIdentity.Anonymous };
        request.SetBody(bytes, bytes.Length);
        Assert.True(RequestParser.TryParse(request.Body, operation, 64, out request.Info, out var problem), problem.Message);
        return request;
    }

    private RoutingDecision Decide(ModelRoute route, GatewayRequest? request = null) => _router.Decide(request ?? Request(), route);

    private static string[] Names(RoutingDecision decision) => decision.Ranked.Select(d => d.Name).ToArray();

    private static void Measure(Deployment deployment, int ttftMs, int samples = 10, int? durationMs = null)
    {
        for (var i = 0; i < samples; i++)
        {
            deployment.State.Latency.Record(TimeSpan.FromMilliseconds(ttftMs), TimeSpan.FromMilliseconds(durationMs ?? ttftMs * 3));
        }
    }

    [Fact]
    public void Priority_tries_targets_in_the_order_listed()
    {
        var decision = Decide(Route(RoutingStrategyKind.Priority, [D("a"), D("b"), D("c")]));

        Assert.Equal(["a", "b", "c"], Names(decision));
        Assert.Equal(DecisionReason.Priority, decision.Reason);
    }

    [Fact]
    public void Weighted_spreads_first_picks_in_proportion_to_weight()
    {
        var route = Route(RoutingStrategyKind.Weighted, [D("heavy"), D("light")], weights: [3, 1]);

        var heavy = Enumerable.Range(0, 1000).Count(_ => Decide(route).Ranked[0].Name == "heavy");

        Assert.InRange(heavy, 730, 770);
    }

    [Fact]
    public void Cost_ranks_by_the_estimated_cost_of_this_request()
    {
        // Cheap input but dear output, against the reverse: which wins depends on the request.
        var route = Route(RoutingStrategyKind.Cost, [D("cheap-in", input: 0.1, output: 20), D("cheap-out", input: 5, output: 1)]);
        var longPromptShortAnswer = Request($$"""{"model":"route","max_tokens":1,"messages":[{"role":"user","content":"{{new string('x', 40_000)}}"}]}""");
        var shortPromptLongAnswer = Request("""{"model":"route","max_tokens":4000,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal("cheap-in", Decide(route, longPromptShortAnswer).Ranked[0].Name);
        Assert.Equal("cheap-out", Decide(route, shortPromptLongAnswer).Ranked[0].Name);
        Assert.Equal(DecisionReason.Cheapest, Decide(route).Reason);
    }

    [Fact]
    public void Equal_scores_take_turns()
    {
        var route = Route(RoutingStrategyKind.Cost, [D("a", 1, 1), D("b", 1, 1), D("c", 1, 1)]);

        var firsts = Enumerable.Range(0, 30).Select(_ => Decide(route).Ranked[0].Name).GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());

        Assert.Equal(10, firsts["a"]);
        Assert.Equal(10, firsts["b"]);
        Assert.Equal(10, firsts["c"]);
    }

    [Fact]
    public void Latency_prefers_the_lowest_measured_time_and_tries_unmeasured_ones()
    {
        var slow = D("slow");
        var fast = D("fast");
        var unknown = D("unknown");
        Measure(slow, 900);
        Measure(fast, 100);
        var stream = Request("""{"model":"route","stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(["unknown", "fast", "slow"], Names(Decide(Route(RoutingStrategyKind.Latency, [slow, fast, unknown]), stream)));
        Assert.Equal(["fast", "slow"], Names(Decide(Route(RoutingStrategyKind.Latency, [slow, fast]), stream)));
    }

    [Fact]
    public void Latency_data_older_than_the_window_is_forgotten()
    {
        var a = D("a");
        var b = D("b");
        Measure(a, 900);
        Measure(b, 100);
        var route = Route(RoutingStrategyKind.Latency, [a, b]);
        Assert.Equal("b", Decide(route).Ranked[0].Name);

        _time.Advance(TimeSpan.FromMinutes(2));
        Measure(b, 800, samples: 1, durationMs: 800);

        // a's slowness has aged out, so a is worth trying again; b is known to be slow now.
        Assert.Equal("a", Decide(route).Ranked[0].Name);
    }

    [Fact]
    public void Least_busy_prefers_fewest_requests_in_flight_relative_to_capacity()
    {
        var busy = D("busy");
        var idle = D("idle");
        var big = D("big", capacity: 100);
        busy.State.Enter();
        busy.State.Enter();
        idle.State.Enter();
        for (var i = 0; i < 10; i++)
        {
            big.State.Enter();
        }

        Assert.Equal(["big", "idle", "busy"], Names(Decide(Route(RoutingStrategyKind.LeastBusy, [busy, idle, big]))));
    }

    [Fact]
    public void Balanced_scores_cost_and_latency_with_the_route_weights()
    {
        var cheapSlow = D("cheap-slow", input: 0.1, output: 0.1);
        var dearFast = D("dear-fast", input: 10, output: 10);
        Measure(cheapSlow, 1000, durationMs: 5000);
        Measure(dearFast, 100, durationMs: 500);

        Assert.Equal("cheap-slow", Decide(Route(RoutingStrategyKind.Balanced, [cheapSlow, dearFast], costWeight: 0.9, latencyWeight: 0.1)).Ranked[0].Name);
        Assert.Equal("dear-fast", Decide(Route(RoutingStrategyKind.Balanced, [cheapSlow, dearFast], costWeight: 0.1, latencyWeight: 0.9)).Ranked[0].Name);
    }

    [Fact]
    public void Slo_picks_the_cheapest_deployment_that_meets_the_target()
    {
        var cheapSlow = D("cheap-slow", input: 0.1, output: 0.1);
        var midFast = D("mid-fast", input: 1, output: 1);
        var dearFast = D("dear-fast", input: 10, output: 10);
        Measure(cheapSlow, 1500);
        Measure(midFast, 300);
        Measure(dearFast, 200);
        var slo = new SloSettings(LatencyMetric.Ttft, 90, TimeSpan.FromMilliseconds(800), true);

        var decision = Decide(Route(RoutingStrategyKind.Cost, [cheapSlow, dearFast, midFast], slo: slo));

        Assert.Equal(["mid-fast", "dear-fast", "cheap-slow"], Names(decision));
        Assert.Equal(DecisionReason.SloMet, decision.Reason);
    }

    [Fact]
    public void Slo_picks_the_fastest_when_none_meets_the_target()
    {
        var a = D("a", input: 0.1);
        var b = D("b", input: 10);
        Measure(a, 2000);
        Measure(b, 1200);
        var slo = new SloSettings(LatencyMetric.Ttft, 90, TimeSpan.FromMilliseconds(800), true);

        var decision = Decide(Route(RoutingStrategyKind.Cost, [a, b], slo: slo));

        Assert.Equal(["b", "a"], Names(decision));
        Assert.Equal(DecisionReason.SloMissedFastest, decision.Reason);
    }

    [Fact]
    public void A_request_may_tighten_the_objective()
    {
        var cheap = D("cheap", input: 0.1);
        var fast = D("fast", input: 10);
        Measure(cheap, 500);
        Measure(fast, 150);
        var route = Route(RoutingStrategyKind.Cost, [cheap, fast], slo: new SloSettings(LatencyMetric.Ttft, 90, TimeSpan.FromSeconds(1), true));
        var strict = Request();
        strict.SloOverride = TimeSpan.FromMilliseconds(200);

        Assert.Equal("cheap", Decide(route).Ranked[0].Name);
        Assert.Equal("fast", Decide(route, strict).Ranked[0].Name);
    }

    [Fact]
    public void A_prompt_too_long_for_a_small_context_goes_to_the_long_context_deployment()
    {
        var small = D("small", input: 0.1, context: 8192);
        var large = D("large", input: 1, context: 128000);
        var route = Route(RoutingStrategyKind.Cost, [small, large]);
        var longPrompt = Request($$"""{"model":"route","messages":[{"role":"user","content":"{{string.Join(' ', Enumerable.Repeat("lorem ipsum dolor", 5000))}}"}]}""");
        var shortPrompt = Request();

        Assert.Equal(["large"], Names(Decide(route, longPrompt)));
        Assert.True(longPrompt.GetExactTokens(TokenizerKind.O200k) > 8192, "the tokenizer ran because the prompt was near the limit");
        Assert.Equal("small", Decide(route, shortPrompt).Ranked[0].Name);
        Assert.Equal(-1, shortPrompt.GetExactTokens(TokenizerKind.O200k));
    }

    [Fact]
    public void When_no_context_window_fits_the_decision_says_so_with_the_numbers()
    {
        var route = Route(RoutingStrategyKind.Priority, [D("small", context: 4096), D("medium", context: 8192)]);
        var request = Request($$"""{"model":"route","max_tokens":1000,"messages":[{"role":"user","content":"{{string.Join(' ', Enumerable.Repeat("lorem ipsum dolor", 4000))}}"}]}""");

        var decision = Decide(route, request);

        Assert.Empty(decision.Ranked);
        Assert.Equal(Exclusion.ContextWindow, decision.Blocking);
        Assert.Equal(8192, decision.BlockingLimit);
        Assert.True(decision.BlockingTokens > 8192 - 1000);
    }

    [Theory]
    [InlineData("""{"model":"route","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"hi"}]}""", "tools")]
    [InlineData("""{"model":"route","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}""", "vision")]
    [InlineData("""{"model":"route","response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}},"messages":[{"role":"user","content":"hi"}]}""", "json")]
    public void Requests_go_only_where_their_needs_are_met(string body, string capable)
    {
        var route = Route(RoutingStrategyKind.Priority, [
            D("plain"),
            D("tools", capabilities: Capabilities.Chat | Capabilities.Tools),
            D("vision", capabilities: Capabilities.Chat | Capabilities.Vision),
            D("json", capabilities: Capabilities.Chat | Capabilities.JsonSchema),
        ]);

        Assert.Equal([capable], Names(Decide(route, Request(body))));
    }

    [Fact]
    public void Embeddings_go_only_to_embedding_deployments()
    {
        var route = Route(RoutingStrategyKind.Priority, [D("chat"), D("embed", capabilities: Capabilities.Embeddings)]);

        var decision = Decide(route, Request("""{"model":"route","input":"hello"}""", Operation.Embeddings));

        Assert.Equal(["embed"], Names(decision));
    }

    [Fact]
    public void Route_and_key_constraints_narrow_the_candidates()
    {
        var fleet = new[]
        {
            D("iaas-eu", tier: DeploymentTier.Iaas, region: "eu-west", tags: ["gdpr"]),
            D("paas-eu", tier: DeploymentTier.Paas, region: "eu-west"),
            D("saas-us", tier: DeploymentTier.Saas, region: "us-east"),
        };
        var euOnly = new CallerIdentity { KeyId = "k", Name = "eu-team", AllowedRegions = ["eu-west"] };

        Assert.Equal(["iaas-eu", "paas-eu"], Names(Decide(Route(RoutingStrategyKind.Priority, fleet, tiers: [DeploymentTier.Iaas, DeploymentTier.Paas]))));
        Assert.Equal(["iaas-eu"], Names(Decide(Route(RoutingStrategyKind.Priority, fleet, tags: ["gdpr"]))));
        Assert.Equal(["iaas-eu", "paas-eu"], Names(Decide(Route(RoutingStrategyKind.Priority, fleet), Request(caller: euOnly))));
    }

    [Fact]
    public void A_self_hosted_deployment_wins_while_it_has_room_then_traffic_spills_over()
    {
        var vllm = D("vllm", input: 0, output: 0, tier: DeploymentTier.Iaas, perHour: 2.5, capacity: 2);
        var azure = D("azure", input: 0.15, output: 0.6, tier: DeploymentTier.Paas);
        var route = Route(RoutingStrategyKind.Cost, [azure, vllm]);

        Assert.Equal("vllm", Decide(route).Ranked[0].Name);
        vllm.State.Enter();
        vllm.State.Enter();
        var saturated = Decide(route);
        Assert.Equal(["azure"], Names(saturated));

        vllm.State.Exit();
        Assert.Equal("vllm", Decide(route).Ranked[0].Name);
    }

    [Fact]
    public void Unhealthy_deployments_are_skipped_and_a_decision_with_none_left_says_why()
    {
        var cooling = D("cooling");
        var limited = D("limited");
        cooling.State.CoolDown(TimeSpan.FromSeconds(20));
        limited.State.MarkLimited(TimeSpan.FromSeconds(5));
        var route = Route(RoutingStrategyKind.Priority, [cooling, limited, D("healthy")]);

        Assert.Equal(["healthy"], Names(Decide(route)));

        var none = Decide(Route(RoutingStrategyKind.Priority, [cooling, limited]));
        Assert.Empty(none.Ranked);
        Assert.Equal(TimeSpan.FromSeconds(5), none.BlockingRetryAfter);

        _time.Advance(TimeSpan.FromSeconds(21));
        Assert.Equal(["cooling", "limited"], Names(Decide(Route(RoutingStrategyKind.Priority, [cooling, limited]))));
    }

    [Fact]
    public void Exploration_periodically_retries_the_deployment_measured_longest_ago()
    {
        var fast = D("fast");
        var once = D("once-slow");
        Measure(once, 3000, samples: 5);
        _time.Advance(TimeSpan.FromSeconds(10));
        Measure(fast, 100, samples: 5);
        var route = Route(RoutingStrategyKind.Latency, [fast, once], exploration: 0.1);

        var firsts = Enumerable.Range(0, 100).Select(_ => Decide(route)).ToList();

        Assert.Equal(10, firsts.Count(d => d.Ranked[0].Name == "once-slow"));
        Assert.All(firsts.Where(d => d.Ranked[0].Name == "once-slow"), d => Assert.Equal(DecisionReason.Exploration, d.Reason));
    }

    [Fact]
    public void Max_tokens_above_a_deployments_output_limit_excludes_it()
    {
        var route = Route(RoutingStrategyKind.Priority, [D("short", maxOutput: 4096), D("long", maxOutput: 32768)]);

        Assert.Equal(["long"], Names(Decide(route, Request("""{"model":"route","max_tokens":10000,"messages":[{"role":"user","content":"hi"}]}"""))));
    }
}
