using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ModelGateway.State.Redis;

/// <summary>
/// Ready with Redis up. With Redis down: degraded under fail-open (the replica still serves, so it stays
/// in the load balancer), unhealthy under fail-closed (keyed requests would be refused).
/// </summary>
internal sealed class RedisHealthCheck(RedisConnection redis, IOptions<StateOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (redis.IsAvailable)
        {
            return Task.FromResult(HealthCheckResult.Healthy("Redis answers"));
        }

        return Task.FromResult(options.Value.FailurePolicy == RedisFailurePolicy.FailOpen
            ? HealthCheckResult.Degraded("Redis is unreachable: limits are held per replica (fail-open)")
            : HealthCheckResult.Unhealthy("Redis is unreachable: keyed requests are refused (fail-closed)"));
    }
}
