using ModelGateway.Routing;

namespace ModelGateway.Observability;

/// <summary>
/// What clients experienced over the last minute on this replica: requests and the ones that failed
/// (5xx, or a stream that broke). Per-deployment counters count upstream attempts; these count what
/// users saw, which is what on-call needs first.
/// </summary>
internal sealed class GatewayTraffic(TimeProvider timeProvider)
{
    public RollingCounter Requests { get; } = new(timeProvider);

    public RollingCounter Failures { get; } = new(timeProvider);

    public DateTimeOffset StartedAt { get; } = timeProvider.GetUtcNow();

    public void Record(int status, bool completed)
    {
        Requests.Increment();
        if (status >= 500 || (status is >= 200 and < 300 && !completed))
        {
            Failures.Increment();
        }
    }
}
