namespace ModelGateway.Tests.Routing;

/// <summary>
/// The minute-long fleet tests (three replicas under open-loop load, judged on time to first token,
/// refusals and cost) run alone, after the parallel tests: on two cores, other tests' builds of hosts
/// and bursts of requests would be measured as the fleet's latency.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FleetLoadCollection
{
    public const string Name = "Fleet load";
}
