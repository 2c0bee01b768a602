using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Routing;
using ModelGateway.Routing.Affinity;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Wire;

namespace ModelGateway.Tests.Routing.Affinity;

/// <summary>The remembered deployment's bonus, in each strategy's terms, on deterministic inputs; and nothing at all for routes without affinity.</summary>
public sealed class RouterAffinityTests : IDisposable
{
    private static readonly string LongSystem = new('x', 12_800);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly PrefixAffinity _affinity;
    private readonly Router _router;

    public RouterAffinityTests()
    {
        _affinity = new PrefixAffinity(_services.GetRequiredService<IMeterFactory>(), _time);
        _router = new Router(new TokenEstimator(), _time, _affinity);
    }

    public void Dispose()
    {
        _affinity.Dispose();
        _services.Dispose();
    }

    private Deployment D(string name, double input = 1, double cacheRead = 0.1)
        => TestDeployments.Create(name, time: _time, inputPrice: input, outputPrice: 1, cacheReadPrice: cacheRead, latencyWindow: TimeSpan.FromMinutes(1));

    private static ModelRoute Route(RoutingStrategyKind strategy, Deployment[] targets, AffinitySettings? affinity, SloSettings? slo = null) => new()
    {
        Name = "route",
        Description = null,
        Strategy = strategy,
        StrategyName = strategy.ToString().ToLowerInvariant(),
        Targets = targets,
        Weights = targets.Select(_ => 1.0).ToArray(),
        Slo = slo,
        CostWeight = 0.5,
        LatencyWeight = 0.5,
        Exploration = 0,
        ExpectedOutputTokens = 256,
        AllowedTiers = null,
        AllowedRegions = null,
        RequiredTags = null,
        Resilience = new RouteResilience(3, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(5),
            TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(10), TimeSpan.Zero, null, false),
        IsAuto = false,
        Affinity = affinity,
    };

    private static AffinitySettings Settings() => new(1024, TimeSpan.FromMinutes(5), 1.0, 7);

    // About 3.2k estimated tokens of shared system prompt.
    private static GatewayRequest Request(string user = "hi")
    {
        var bytes = Encoding.UTF8.GetBytes($$"""{"model":"route","messages":[{"role":"system","content":"{{LongSystem}}"},{"role":"user","content":"{{user}}"}]}""");
        var request = new GatewayRequest(new DefaultHttpContext(), OpenAIChatProtocol.Instance, Operation.ChatCompletions, "test", 0);
        request.SetBody(bytes, bytes.Length);
        Assert.True(RequestParser.TryParse(request.Body, Operation.ChatCompletions, 64, out request.Info, out var problem), problem.Message);
        return request;
    }

    private static void Measure(Deployment deployment, int durationMs)
    {
        for (var i = 0; i < 10; i++)
        {
            deployment.State.Latency.Record(TimeSpan.FromMilliseconds(durationMs / 3), TimeSpan.FromMilliseconds(durationMs));
        }
    }

    // Serves one request on the given deployment, so the store remembers its prefixes there.
    private void Serve(ModelRoute route, Deployment servedBy)
    {
        var request = Request("first");
        _router.Decide(request, route);
        Assert.NotNull(request.Affinity);
        request.Affinity.Remember(servedBy);
    }

    [Fact]
    public void A_route_without_affinity_allocates_no_more_than_with_no_affinity_store_at_all()
    {
        var targets = new[] { D("a"), D("b"), D("c") };
        var route = Route(RoutingStrategyKind.Cost, targets, affinity: null);
        var plain = new Router(new TokenEstimator(), _time);
        var request = Request();
        _router.Decide(request, route);
        plain.Decide(request, route);

        var before = GC.GetAllocatedBytesForCurrentThread();
        _router.Decide(request, route);
        var withStore = GC.GetAllocatedBytesForCurrentThread() - before;
        before = GC.GetAllocatedBytesForCurrentThread();
        plain.Decide(request, route);
        var withoutStore = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(withoutStore, withStore);
        Assert.Null(request.Affinity);
    }

    [Fact]
    public void Under_cost_the_remembered_deployment_wins_by_its_cache_read_saving_but_not_beyond_it()
    {
        // c is 0.5 $/M dearer on input; its cached 3.2k-token prefix saves 0.9 $/M on them: it still wins.
        var a = D("a", input: 1.0);
        var c = D("c", input: 1.5, cacheRead: 0.6);
        var route = Route(RoutingStrategyKind.Cost, [a, c], Settings());
        Serve(route, c);

        var decision = _router.Decide(Request("next"), route);
        Assert.Equal("c", decision.Ranked[0].Name);
        Assert.StartsWith("affinity: prefix 3.2k tokens last served by c", decision.ReasonText, StringComparison.Ordinal);

        // Twice the price: the saving no longer covers it.
        var dear = D("dear", input: 3.0, cacheRead: 2.9);
        var route2 = Route(RoutingStrategyKind.Cost, [a, dear], Settings() with { Seed = 8 });
        Serve(route2, dear);
        Assert.Equal("a", _router.Decide(Request("next"), route2).Ranked[0].Name);
    }

    [Fact]
    public void Under_latency_the_bonus_is_the_prefill_a_warm_cache_saves()
    {
        // 3.2k tokens × 0.05 ms = 160 ms: enough to beat 100 ms slower, not 300 ms slower.
        var fast = D("fast");
        var near = D("near");
        var far = D("far");
        Measure(fast, 600);
        Measure(near, 700);
        Measure(far, 900);

        var nearRoute = Route(RoutingStrategyKind.Latency, [fast, near], Settings());
        Serve(nearRoute, near);
        Assert.Equal("near", _router.Decide(Request("next"), nearRoute).Ranked[0].Name);

        var farRoute = Route(RoutingStrategyKind.Latency, [fast, far], Settings() with { Seed = 9 });
        Serve(farRoute, far);
        Assert.Equal("fast", _router.Decide(Request("next"), farRoute).Ranked[0].Name);
    }

    [Fact]
    public void A_remembered_deployment_missing_the_latency_objective_gets_no_bonus()
    {
        var quick = D("quick", input: 2.0);
        var slow = D("slow", input: 1.0);
        Measure(quick, 300);
        Measure(slow, 6000);
        var route = Route(RoutingStrategyKind.Cost, [quick, slow], Settings(), new SloSettings(LatencyMetric.Duration, 90, TimeSpan.FromSeconds(1), false));
        Serve(route, slow);

        var decision = _router.Decide(Request("next"), route);

        Assert.Equal("quick", decision.Ranked[0].Name);
        Assert.DoesNotContain("affinity", decision.ReasonText, StringComparison.Ordinal);
    }

    [Fact]
    public void A_remembered_prefix_is_forgotten_after_the_ttl()
    {
        var a = D("a");
        var b = D("b");
        var route = Route(RoutingStrategyKind.Priority, [a, b], Settings());
        Serve(route, b);
        Assert.Equal("b", _router.Decide(Request("next"), route).Ranked[0].Name);

        _time.Advance(TimeSpan.FromMinutes(6));

        Assert.Equal("a", _router.Decide(Request("next"), route).Ranked[0].Name);
    }
}
