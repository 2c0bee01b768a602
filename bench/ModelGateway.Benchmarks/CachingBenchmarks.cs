using BenchmarkDotNet.Attributes;
using ModelGateway.Caching;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Routing;

namespace ModelGateway.Benchmarks;

/// <summary>
/// What the response cache costs a request. A route without a <c>cache</c> block meets it as one null
/// check in the completion handler (<see cref="RouteWithoutCache"/>); a cached route pays for its key: the
/// canonical request written deterministically and hashed (<see cref="KeyOfCachedRoute"/>). Both measured
/// next to the routing decision every request makes, for scale.
/// </summary>
[MemoryDiagnoser]
public class CachingBenchmarks
{
    private Router _router = null!;
    private GatewayRequest _request = null!;
    private ModelRoute _plain = null!;
    private ModelRoute _cached = null!;
    private ChatRequest _canonical = null!;

    [GlobalSetup]
    public void Setup()
    {
        var fleet = BenchDeployments.Fleet(10);
        _router = new Router(new TokenEstimator(), TimeProvider.System);
        _request = BenchDeployments.Request();
        _plain = BenchDeployments.Route(fleet, RoutingStrategyKind.Cost);
        _cached = BenchDeployments.Route(fleet, RoutingStrategyKind.Cost);
        _cached.Cache = new CacheSettings(TimeSpan.FromHours(1), CacheScope.Global, 262_144, false, "bench");
        _request.Route = _plain;
        _canonical = _request.Canonical;
    }

    /// <summary>The routing decision, for scale: what every request pays whatever its route.</summary>
    [Benchmark(Baseline = true)]
    public object Decide() => _router.Decide(_request, _plain);

    /// <summary>The handler's test on a route without a cache: the whole of the cache's hot-path cost there.</summary>
    [Benchmark]
    public bool RouteWithoutCache() => _request.Route!.Cache is not null;

    /// <summary>A cached route's key: the canonical request written with sorted fields and hashed (SHA-256).</summary>
    [Benchmark]
    public string KeyOfCachedRoute() => CacheKey.For(_cached.Name, _cached.Cache!, "global", _canonical);
}
