using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ModelGateway.Hosting;

/// <summary>Not ready from the moment the replica starts shutting down, so it leaves load-balancer rotation first.</summary>
internal sealed class DrainHealthCheck(GracefulDrain drain) : IHealthCheck
{
    private static readonly Task<HealthCheckResult> Serving = Task.FromResult(HealthCheckResult.Healthy("serving"));
    private static readonly Task<HealthCheckResult> Draining = Task.FromResult(HealthCheckResult.Unhealthy("shutting down: finishing the requests in flight"));

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        => drain.IsDraining ? Draining : Serving;
}
