using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ModelGateway.State.Redis;

/// <summary>
/// Ready with Redis up. With Redis down: degraded under fail-open (the replica still serves, so it stays
/// in the load balancer), unhealthy under fail-closed (keyed requests would be refused). Degraded too,
/// for a while, after Redis came back without the gateway's data, so someone looks.
/// </summary>
internal sealed class RedisHealthCheck(RedisConnection redis, IOptions<StateOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (redis.IsAvailable)
        {
            return Task.FromResult(redis.DataLostRecently is { } at
                ? HealthCheckResult.Degraded($"Redis answers, but came back without the gateway's data at {at:u} (keys, spend and usage before then are gone): restore it from its append-only file or a backup")
                : HealthCheckResult.Healthy("Redis answers"));
        }

        return Task.FromResult(options.Value.FailurePolicy == RedisFailurePolicy.FailOpen
            ? HealthCheckResult.Degraded("Redis is unreachable: limits are held per replica (fail-open)")
            : HealthCheckResult.Unhealthy("Redis is unreachable: keyed requests are refused (fail-closed)"));
    }
}
