using BenchmarkDotNet.Attributes;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Routing;

namespace ModelGateway.Benchmarks;

/// <summary>One routing decision over fleets of 10, 100 and 1,000 deployments. Target: under 2 µs and 20 µs, allocating only the result.</summary>
[MemoryDiagnoser]
public class RoutingBenchmarks
{
    private Router _router = null!;
    private GatewayRequest _request = null!;
    private ModelRoute _cost = null!;
    private ModelRoute _slo = null!;
    private ModelRoute _priority = null!;

    [Params(10, 100, 1000)]
    public int Deployments { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var fleet = BenchDeployments.Fleet(Deployments);
        _router = new Router(new TokenEstimator(), TimeProvider.System);
        _request = BenchDeployments.Request();
        _cost = BenchDeployments.Route(fleet, RoutingStrategyKind.Cost);
        _priority = BenchDeployments.Route(fleet, RoutingStrategyKind.Priority);
        _slo = BenchDeployments.Route(fleet, RoutingStrategyKind.Cost, new SloSettings(LatencyMetric.Ttft, 90, TimeSpan.FromMilliseconds(300), true));
    }

    [Benchmark(Baseline = true)]
    public object Priority() => _router.Decide(_request, _priority);

    [Benchmark]
    public object Cost() => _router.Decide(_request, _cost);

    [Benchmark]
    public object CostWithLatencyObjective() => _router.Decide(_request, _slo);
}
