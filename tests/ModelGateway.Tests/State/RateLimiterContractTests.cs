using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.State;
using ModelGateway.State.Redis;
using ModelGateway.Tests.Infrastructure;
using StackExchange.Redis;

namespace ModelGateway.Tests.State;

/// <summary>
/// Every limiter gives the same answers for the same traffic: in memory, on a real Redis 7 server,
/// and on a real three-node Redis Cluster.
/// </summary>
public abstract class RateLimiterContractTests
{
    private protected abstract IRateLimiter Limiter { get; }

    private static CallerIdentity Key(int? rpm = null, long? tpm = null, int? parallel = null, double? daily = null) => new()
    {
        KeyId = "key_" + Guid.NewGuid().ToString("N")[..12],
        Name = "test",
        RpmLimit = rpm,
        TpmLimit = tpm,
        MaxParallelRequests = parallel,
        DailyBudgetUsd = daily,
    };

    private ValueTask<KeyAdmission> AdmitAsync(CallerIdentity caller, long tokens = 10, double cost = 0)
        => Limiter.AdmitAsync(caller, Guid.NewGuid().ToString("N"), tokens, cost, CancellationToken.None);

    [Fact]
    public async Task Rpm_admits_exactly_the_limit_and_then_says_when_to_come_back()
    {
        var caller = Key(rpm: 5);
        var answers = new List<KeyAdmission>();
        for (var i = 0; i < 8; i++)
        {
            answers.Add(await AdmitAsync(caller));
        }

        Assert.Equal(5, answers.Count(a => a.Allowed));
        var refused = answers.Last();
        Assert.False(refused.Allowed);
        Assert.Equal(429, refused.Rejection!.Status);
        Assert.InRange(refused.Rejection.RetryAfter!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60));
        Assert.Equal(5, answers[0].RequestLimit);
        Assert.Equal(4, answers[0].RequestsRemaining);
        Assert.Equal(0, answers[4].RequestsRemaining);
    }

    [Fact]
    public async Task Concurrent_admissions_never_exceed_the_limit()
    {
        var caller = Key(rpm: 25);

        var answers = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => AdmitAsync(caller).AsTask()));

        Assert.Equal(25, answers.Count(a => a.Allowed));
    }

    [Fact]
    public async Task Tpm_reserves_the_estimate_and_settling_returns_what_was_not_used()
    {
        var caller = Key(tpm: 1000);

        var first = await AdmitAsync(caller, tokens: 800);
        var second = await AdmitAsync(caller, tokens: 800);
        await Limiter.SettleAsync(caller, first, actualTokens: 100, actualCost: 0);
        var third = await AdmitAsync(caller, tokens: 800);

        Assert.True(first.Allowed);
        Assert.False(second.Allowed);
        Assert.Equal("tokens", second.Rejection!.Type);
        Assert.True(third.Allowed);
    }

    [Fact]
    public async Task Parallel_requests_are_capped_and_a_finished_one_frees_its_slot()
    {
        var caller = Key(parallel: 2);

        var a = await AdmitAsync(caller);
        var b = await AdmitAsync(caller);
        var c = await AdmitAsync(caller);
        await Limiter.SettleAsync(caller, a, 10, 0);
        var d = await AdmitAsync(caller);

        Assert.True(a.Allowed && b.Allowed && d.Allowed);
        Assert.False(c.Allowed);
        Assert.Contains("concurrent", c.Rejection!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_spent_budget_refuses_with_insufficient_quota_which_is_not_retryable()
    {
        var caller = Key(daily: 1.00);

        var first = await AdmitAsync(caller, cost: 0.40);
        await Limiter.SettleAsync(caller, first, 10, actualCost: 1.20);
        var refused = await AdmitAsync(caller, cost: 0.01);

        Assert.False(refused.Allowed);
        Assert.Equal(429, refused.Rejection!.Status);
        Assert.Equal("insufficient_quota", refused.Rejection.Code);
        Assert.False(refused.Rejection.ShouldRetry);
    }

    [Fact]
    public async Task Concurrent_requests_at_the_edge_of_a_budget_overspend_by_at_most_one_estimate()
    {
        var caller = Key(daily: 1.00);
        const double estimate = 0.30;

        var answers = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => AdmitAsync(caller, cost: estimate).AsTask()));

        // Reservations stop once the reserved spend reaches the budget: 4 × 0.30 = 1.20, i.e. one estimate over at most.
        var admitted = answers.Count(a => a.Allowed);
        Assert.True(admitted * estimate <= 1.00 + estimate, $"{admitted} admitted");
        Assert.Equal(4, admitted);
    }

    [Fact]
    public async Task A_deployment_at_its_provider_rpm_is_refused_and_marked_for_routing()
    {
        var deployment = TestDeployments.Create("dep-" + Guid.NewGuid().ToString("N")[..8], rpm: 3);

        var answers = new List<DeploymentAdmission>();
        for (var i = 0; i < 5; i++)
        {
            answers.Add(await Limiter.TryAcquireDeploymentAsync(deployment, 10, CancellationToken.None));
        }

        Assert.Equal(3, answers.Count(a => a.Allowed));
        Assert.True(deployment.State.LimitedRemaining > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_deployment_limit_in_the_providers_own_window_frees_its_slots_when_that_window_moves_not_after_a_minute()
    {
        // requests: "2 per 2s", tokens: "100 per 2s"
        var deployment = TestDeployments.Create("win-" + Guid.NewGuid().ToString("N")[..8], requests: new WindowLimit(2, 2), tokens: new WindowLimit(100, 2));

        Assert.True((await Limiter.TryAcquireDeploymentAsync(deployment, 10, CancellationToken.None)).Allowed);
        Assert.True((await Limiter.TryAcquireDeploymentAsync(deployment, 10, CancellationToken.None)).Allowed);
        var refused = await Limiter.TryAcquireDeploymentAsync(deployment, 10, CancellationToken.None);
        Assert.False(refused.Allowed);
        Assert.InRange(refused.RetryAfter, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));

        // Once the 2 s window has moved past both, the deployment takes requests again.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var admitted = false;
        while (!admitted && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(200);
            admitted = (await Limiter.TryAcquireDeploymentAsync(deployment, 10, CancellationToken.None)).Allowed;
        }

        Assert.True(admitted, "the window never moved");

        // Tokens in the same window: 80 more would go past 100.
        var tokens = TestDeployments.Create("win-" + Guid.NewGuid().ToString("N")[..8], tokens: new WindowLimit(100, 2));
        Assert.True((await Limiter.TryAcquireDeploymentAsync(tokens, 60, CancellationToken.None)).Allowed);
        var overTokens = await Limiter.TryAcquireDeploymentAsync(tokens, 60, CancellationToken.None);
        Assert.False(overTokens.Allowed);
        Assert.InRange(overTokens.RetryAfter, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task A_key_without_limits_costs_no_round_trip()
    {
        var answer = await AdmitAsync(new CallerIdentity { KeyId = "unlimited", Name = "unlimited" });

        Assert.Same(KeyAdmission.Unlimited, answer);
    }
}

public sealed class InMemoryRateLimiterTests : RateLimiterContractTests
{
    private protected override IRateLimiter Limiter { get; } = new InMemoryRateLimiter(TimeProvider.System);
}

public sealed class RedisRateLimiterTests : RateLimiterContractTests, IClassFixture<RedisFixture>
{
    private readonly RedisFixture _redis;

    public RedisRateLimiterTests(RedisFixture redis)
    {
        _redis = redis;
        Limiter = redis.Limiter;
    }

    private protected override IRateLimiter Limiter { get; }

    [Fact]
    public async Task At_its_concurrency_limit_a_slot_freed_on_one_replica_is_free_on_the_others_at_once()
    {
        // A sequential client behind a round-robin balancer: its next request lands on another replica
        // the moment the previous one ended.
        var caller = new CallerIdentity { KeyId = "slot-" + Guid.NewGuid().ToString("N"), Name = "slot", MaxParallelRequests = 1 };
        var (connection, otherReplica) = await RedisLimiters.ConnectAsync(_redis.Server.ConnectionString);
        await using (connection)
        await using (otherReplica)
        {
            var held = await Limiter.AdmitAsync(caller, "first", 1, 0, CancellationToken.None);
            var whileHeld = await otherReplica.AdmitAsync(caller, "second", 1, 0, CancellationToken.None);
            await Limiter.SettleAsync(caller, held, 1, 0);
            var afterwards = await otherReplica.AdmitAsync(caller, "third", 1, 0, CancellationToken.None);

            Assert.True(held.Allowed);
            Assert.False(whileHeld.Allowed);
            Assert.Equal("concurrency", whileHeld.RejectionReason);
            Assert.True(afterwards.Allowed);
        }
    }

    [Fact]
    public async Task Far_from_its_limit_a_quiet_keys_finished_request_is_settled_within_moments()
    {
        // With headroom the settle waits for the key's next admission; when none comes, a timer sends it.
        var caller = new CallerIdentity { KeyId = "quiet-" + Guid.NewGuid().ToString("N"), Name = "quiet", MaxParallelRequests = 100, TpmLimit = 10_000 };
        var database = _redis.Connection.Database;
        var admitted = await Limiter.AdmitAsync(caller, "only", 1_000, 0, CancellationToken.None);
        await Limiter.SettleAsync(caller, admitted, 100, 0);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        while ((await database.SortedSetLengthAsync($"{{k:{caller.KeyId}}}:parallel") > 0
                || (long)await database.HashGetAsync($"{{k:{caller.KeyId}}}:tpm", "s") != 100)
               && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(20);
        }

        Assert.True(admitted.Allowed);
        Assert.Equal(0, await database.SortedSetLengthAsync($"{{k:{caller.KeyId}}}:parallel"));
        Assert.Equal(100, (long)await database.HashGetAsync($"{{k:{caller.KeyId}}}:tpm", "s"));
    }

    [Fact]
    public async Task Requests_older_than_a_minute_stop_counting_and_the_reset_follows_the_oldest_that_still_counts()
    {
        // The window as the script keeps it: one bucket per second, a running sum and the oldest second.
        // Three requests 70 s ago (gone from the window) and one 30 s ago, under an RPM limit of 3.
        var caller = new CallerIdentity { KeyId = "aging-" + Guid.NewGuid().ToString("N"), Name = "aging", RpmLimit = 3 };
        var database = _redis.Connection.Database;
        var now = (long)((RedisResult[])(await database.ExecuteAsync("TIME"))!)[0];
        await database.HashSetAsync($"{{k:{caller.KeyId}}}:rpm",
            [new(now - 70, 3), new(now - 30, 1), new("s", 4), new("o", now - 70)]);

        var first = await Limiter.AdmitAsync(caller, "r1", 1, 0, CancellationToken.None);
        var second = await Limiter.AdmitAsync(caller, "r2", 1, 0, CancellationToken.None);
        var third = await Limiter.AdmitAsync(caller, "r3", 1, 0, CancellationToken.None);

        Assert.True(first.Allowed);
        Assert.Equal(1, first.RequestsRemaining);
        Assert.InRange(first.RequestsReset, TimeSpan.FromSeconds(28), TimeSpan.FromSeconds(31));
        Assert.True(second.Allowed);
        Assert.False(third.Allowed);
        Assert.Equal("requests", third.RejectionReason);
    }

    [Fact]
    public async Task Answers_come_from_redis_not_from_a_local_fallback()
    {
        var answer = await Limiter.AdmitAsync(new CallerIdentity { KeyId = "shared-" + Guid.NewGuid().ToString("N"), Name = "x", RpmLimit = 10 }, "r", 1, 0, CancellationToken.None);
        var deployment = await Limiter.TryAcquireDeploymentAsync(TestDeployments.Create("shared-" + Guid.NewGuid().ToString("N")[..8], rpm: 10), 1, CancellationToken.None);

        Assert.False(answer.Local);
        Assert.False(deployment.Local);
    }
}

[Collection(RedisClusterCollection.Name)]
public sealed class RedisClusterRateLimiterTests : RateLimiterContractTests
{
    public RedisClusterRateLimiterTests(RedisClusterFixture cluster) => Limiter = cluster.Limiter;

    private protected override IRateLimiter Limiter { get; }

    [Fact]
    public async Task Answers_come_from_the_cluster_not_from_a_local_fallback()
    {
        // A node connection of a busy test machine's cluster may drop for a moment and answers then
        // fall back (correctly) to local limits; what matters is that the cluster answers once it is reachable.
        KeyAdmission answer = null!;
        DeploymentAdmission deployment = default;
        for (var attempt = 0; attempt < 50 && (answer is null || answer.Local || deployment.Local); attempt++)
        {
            await Task.Delay(attempt == 0 ? 0 : 100);
            answer = await Limiter.AdmitAsync(new CallerIdentity { KeyId = "shared-" + Guid.NewGuid().ToString("N"), Name = "x", RpmLimit = 10, DailyBudgetUsd = 5 }, "r", 1, 0.1, CancellationToken.None);
            deployment = await Limiter.TryAcquireDeploymentAsync(TestDeployments.Create("shared-" + Guid.NewGuid().ToString("N")[..8], rpm: 10), 1, CancellationToken.None);
        }

        Assert.False(answer.Local);
        Assert.False(deployment.Local);
    }
}

/// <summary>One redis-server for a test class, with a limiter connected to it.</summary>
public sealed class RedisFixture : IAsyncLifetime
{
    internal RedisServer Server { get; private set; } = null!;
    internal RedisConnection Connection { get; private set; } = null!;
    internal RedisRateLimiter Limiter { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await RedisServer.StartAsync();
        (Connection, Limiter) = await RedisLimiters.ConnectAsync(Server.ConnectionString);
    }

    public async Task DisposeAsync()
    {
        await Connection.DisposeAsync();
        await Server.DisposeAsync();
    }
}

/// <summary>One three-node Redis Cluster shared by the cluster tests (creating one takes seconds).</summary>
public sealed class RedisClusterFixture : IAsyncLifetime
{
    internal RedisCluster Cluster { get; private set; } = null!;
    internal RedisConnection Connection { get; private set; } = null!;
    internal RedisRateLimiter Limiter { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Cluster = await RedisCluster.StartAsync();
        (Connection, Limiter) = await RedisLimiters.ConnectAsync(Cluster.ConnectionString);
    }

    public async Task DisposeAsync()
    {
        await Connection.DisposeAsync();
        await Cluster.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class RedisClusterCollection : ICollectionFixture<RedisClusterFixture>
{
    public const string Name = "Redis cluster";
}

internal static class RedisLimiters
{
    public static async Task<(RedisConnection, RedisRateLimiter)> ConnectAsync(string connectionString, Action<StateOptions>? configure = null)
    {
        var settings = new StateOptions { Redis = connectionString, CommandTimeout = TimeSpan.FromSeconds(2) };
        configure?.Invoke(settings);
        var options = Options.Create(settings);
        var connection = new RedisConnection(options, TimeProvider.System, NullLogger<RedisConnection>.Instance);
        await connection.StartAsync(CancellationToken.None);

        // A cluster that has just formed may drop a node connection once while its topology settles;
        // the contract tests start once the connection is (again) in use, as a gateway would.
        var settling = System.Diagnostics.Stopwatch.StartNew();
        while (!connection.IsAvailable && settling.Elapsed < TimeSpan.FromSeconds(15))
        {
            await Task.Delay(50);
        }

        return (connection, new RedisRateLimiter(connection, options, TimeProvider.System, NullLogger<RedisRateLimiter>.Instance));
    }
}
