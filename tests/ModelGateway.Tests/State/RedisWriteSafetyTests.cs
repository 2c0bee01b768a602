using System.Diagnostics;
using System.Globalization;
using ModelGateway.State;
using ModelGateway.State.Redis;
using ModelGateway.Tests.Infrastructure;
using StackExchange.Redis;

namespace ModelGateway.Tests.State;

/// <summary>
/// Every Redis write that can be repeated (a retry after a timeout, a command a frozen Redis runs
/// late) has the effect of one: shown on a real redis-server, one per test, by sending writes twice
/// and by freezing Redis under the limiter.
/// </summary>
public sealed class RedisWriteSafetyTests : IAsyncLifetime
{
    private RedisServer _redis = null!;
    private ConnectionMultiplexer _inspector = null!;

    private IDatabase Database => _inspector.GetDatabase();

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync("--enable-debug-command yes");
        _inspector = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",allowAdmin=true,syncTimeout=10000,asyncTimeout=10000");
    }

    public async Task DisposeAsync()
    {
        await _inspector.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private static CallerIdentity Key(int? parallel = null, long? tpm = null, double? daily = null, int? rpm = null) => new()
    {
        KeyId = "key_" + Guid.NewGuid().ToString("N")[..12],
        Name = "test",
        RpmLimit = rpm,
        TpmLimit = tpm,
        MaxParallelRequests = parallel,
        DailyBudgetUsd = daily,
    };

    private Task<(RedisConnection, RedisRateLimiter)> ConnectAsync(Action<StateOptions>? configure = null)
        => RedisLimiters.ConnectAsync(_redis.ConnectionString, configure);

    // A settle as the limiter sends it: count, then operation id, mode, tokens, cost, flags; no batches.
    private Task SendSettleAsync(CallerIdentity caller, string operation, string mode, long tokens, double cost)
        => Database.ScriptEvaluateAsync(RedisScripts.SettleKey, [$"{{k:{caller.KeyId}}}"],
            [1, operation, mode, tokens, cost.ToString("R", CultureInfo.InvariantCulture), LimitFlags.Of(caller), 0]);

    private async Task<double> SpendTodayAsync(CallerIdentity caller)
    {
        var seconds = (long)((RedisResult[])(await Database.ExecuteAsync("TIME"))!)[0];
        var value = await Database.StringGetAsync($"{{k:{caller.KeyId}}}:spend:d:{DateTimeOffset.FromUnixTimeSeconds(seconds):yyyyMMdd}");
        return value.IsNull ? 0 : double.Parse((string)value!, CultureInfo.InvariantCulture);
    }

    private async Task<long> WindowAsync(CallerIdentity caller, string window)
        => (long)await Database.HashGetAsync($"{{k:{caller.KeyId}}}:{window}", "s");

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), what);
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_settle_sent_twice_corrects_the_reservation_once()
    {
        var (connection, limiter) = await ConnectAsync();
        await using (connection)
        await using (limiter)
        {
            var caller = Key(parallel: 5, tpm: 10_000, daily: 10);
            var admitted = await limiter.AdmitAsync(caller, "client-request-id", 1_000, 0.50, CancellationToken.None);

            await SendSettleAsync(caller, admitted.LeaseId!, "c", 100, 0.20);
            await SendSettleAsync(caller, admitted.LeaseId!, "c", 100, 0.20);

            Assert.True(admitted.Allowed);
            Assert.NotEqual("client-request-id", admitted.LeaseId);
            Assert.Equal(100, await WindowAsync(caller, "tpm"));
            Assert.Equal(0.20, await SpendTodayAsync(caller), 9);
            Assert.Equal(0, await Database.SortedSetLengthAsync($"{{k:{caller.KeyId}}}:parallel"));
        }
    }

    [Fact]
    public async Task An_admission_that_reaches_redis_after_its_timed_out_settle_is_void()
    {
        var caller = Key(parallel: 1, rpm: 100, daily: 10);
        const string Operation = "op-late";

        // The replica gave up on the admission and served the request: its settle arrives first...
        await SendSettleAsync(caller, Operation, "u", 0, 0.30);

        // ...then the admission, stuck until now in a frozen Redis's buffer.
        var late = (RedisResult[])(await Database.ScriptEvaluateAsync(RedisScripts.AdmitKey, [$"{{k:{caller.KeyId}}}"],
            [100, -1, 1, "10", -1, 10, "0.5", Operation, 60_000, 60_000, 0, 0]))!;

        Assert.Equal("void", (string)late[0]!);
        Assert.Equal(1, await WindowAsync(caller, "rpm"));
        Assert.Equal(0.30, await SpendTodayAsync(caller), 9);
        Assert.Equal(0, await Database.SortedSetLengthAsync($"{{k:{caller.KeyId}}}:parallel"));

        // And the settle, sent again, changes nothing.
        await SendSettleAsync(caller, Operation, "u", 0, 0.30);
        Assert.Equal(1, await WindowAsync(caller, "rpm"));
        Assert.Equal(0.30, await SpendTodayAsync(caller), 9);
    }

    [Fact]
    public async Task A_timed_out_admission_that_redis_runs_late_is_settled_once_and_frees_its_slot()
    {
        var (connection, limiter) = await ConnectAsync(o => o.CommandTimeout = TimeSpan.FromMilliseconds(150));
        await using (connection)
        await using (limiter)
        {
            var caller = Key(parallel: 1, tpm: 10_000, daily: 10);
            KeyAdmission admission;
            await _redis.FreezeAsync();
            try
            {
                var clock = Stopwatch.StartNew();
                admission = await limiter.AdmitAsync(caller, "r", 1_000, 0.50, CancellationToken.None);
                Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(150) + StateOptions.WaitMargin + TimeSpan.FromMilliseconds(200), $"waited {clock.Elapsed}");
            }
            finally
            {
                await _redis.ThawAsync();
            }

            // Served by the fail-open policy, the admission possibly applied: it is, once Redis runs it.
            Assert.True(admission is { Allowed: true, Local: true, Uncertain: true });
            await EventuallyAsync(async () => await Database.SortedSetLengthAsync($"{{k:{caller.KeyId}}}:parallel") == 1, "the late admission never ran");

            await limiter.SettleAsync(caller, admission, actualTokens: 40, actualCost: 0.10);

            await EventuallyAsync(async () => await Database.SortedSetLengthAsync($"{{k:{caller.KeyId}}}:parallel") == 0, "the slot of the late admission was not freed");
            Assert.Equal(40, await WindowAsync(caller, "tpm"));
            Assert.Equal(0.10, await SpendTodayAsync(caller), 9);
            Assert.Equal(0, await Database.HashLengthAsync($"{{k:{caller.KeyId}}}:open"));
        }
    }

    [Fact]
    public async Task A_request_refused_after_its_admission_timed_out_leaves_nothing_booked_when_redis_runs_it_late()
    {
        var (connection, limiter) = await ConnectAsync(o =>
        {
            o.CommandTimeout = TimeSpan.FromMilliseconds(150);
            o.FailurePolicy = RedisFailurePolicy.FailClosed;
        });
        await using (connection)
        await using (limiter)
        {
            var caller = Key(parallel: 1, rpm: 10, daily: 10);
            KeyAdmission refused;
            await _redis.FreezeAsync();
            try
            {
                refused = await limiter.AdmitAsync(caller, "r", 10, 0.50, CancellationToken.None);
            }
            finally
            {
                await _redis.ThawAsync();
            }

            Assert.False(refused.Allowed);
            Assert.Equal(503, refused.Rejection!.Status);

            // The undo the limiter queued reaches Redis (it leaves a void marker); the admission, run after
            // the thaw, is either taken back out by it or, arriving after it, void.
            var server = _inspector.GetServer(_redis.ConnectionString);
            await EventuallyAsync(() => Task.FromResult(server.Keys(pattern: $"{{k:{caller.KeyId}}}:void:*").Any()), "the undo never reached Redis");
            await Task.Delay(200);
            Assert.Equal(0, await WindowAsync(caller, "rpm"));
            Assert.Equal(0, await Database.SortedSetLengthAsync($"{{k:{caller.KeyId}}}:parallel"));
            Assert.Equal(0, await SpendTodayAsync(caller), 9);
            Assert.Equal(0, await Database.HashLengthAsync($"{{k:{caller.KeyId}}}:open"));
        }
    }

    [Fact]
    public async Task A_usage_batch_sent_twice_is_counted_once()
    {
        var day = DateTimeOffset.UtcNow.ToString("yyyyMMdd", CultureInfo.InvariantCulture);
        RedisValue[] Batch(long number) => ["replica-a", number, 1, day, "dims", 1, 0, 11, 0, 7, "0.007", 5, 0, 0, 0, 0, 1, 18, "0.0025"];

        Assert.Equal(1, (long)await Database.ScriptEvaluateAsync(RedisScripts.RecordUsage, ["{mg:usage}"], Batch(1)));
        Assert.Equal(0, (long)await Database.ScriptEvaluateAsync(RedisScripts.RecordUsage, ["{mg:usage}"], Batch(1)));
        Assert.Equal(1, (long)await Database.ScriptEvaluateAsync(RedisScripts.RecordUsage, ["{mg:usage}"], Batch(2)));

        Assert.Equal(2, (long)await Database.HashGetAsync($"{{mg:usage}}:{day}", "dims|requests"));
        Assert.Equal(14, (long)await Database.HashGetAsync($"{{mg:usage}}:{day}", "dims|output"));
        Assert.Equal(2, (long)await Database.HashGetAsync($"{{mg:usage}}:{day}", "dims|cache_hits"));
        Assert.Equal(36, (long)await Database.HashGetAsync($"{{mg:usage}}:{day}", "dims|cache_saved_tokens"));
    }

    [Fact]
    public async Task An_outage_batch_sent_twice_is_written_once()
    {
        var caller = Key(rpm: 100, daily: 10);
        var now = (long)((RedisResult[])(await Database.ExecuteAsync("TIME"))!)[0];
        var day = DateTimeOffset.FromUnixTimeSeconds(now).ToString("yyyyMMdd", CultureInfo.InvariantCulture);
        RedisValue[] batch = [0, 1, "batch-1", LimitFlags.Of(caller), 2, now - 5, 3, 300, now - 90, 2, 200, 1, day, "0.25", 0];

        await Database.ScriptEvaluateAsync(RedisScripts.SettleKey, [$"{{k:{caller.KeyId}}}"], batch);
        await Database.ScriptEvaluateAsync(RedisScripts.SettleKey, [$"{{k:{caller.KeyId}}}"], batch);

        // Three requests 5 s ago count in the window; two 90 s ago had already left it. The spend counts once.
        Assert.Equal(3, await WindowAsync(caller, "rpm"));
        Assert.Equal(0.25, await SpendTodayAsync(caller), 9);
    }

    [Fact]
    public async Task A_running_requests_slot_outlives_its_lease_by_renewal_and_is_freed_when_it_ends()
    {
        void ShortLeases(StateOptions o)
        {
            o.LeaseDuration = TimeSpan.FromSeconds(1);
            o.LeaseRenewInterval = TimeSpan.FromMilliseconds(200);
        }

        var (connection, serving) = await ConnectAsync(ShortLeases);
        var (otherConnection, other) = await ConnectAsync(ShortLeases);
        await using (connection)
        await using (serving)
        await using (otherConnection)
        await using (other)
        {
            var caller = Key(parallel: 1);
            var running = await serving.AdmitAsync(caller, "long", 1, 0, CancellationToken.None);
            await Task.Delay(TimeSpan.FromSeconds(2.5));
            var whileRunning = await other.AdmitAsync(caller, "next", 1, 0, CancellationToken.None);
            await serving.SettleAsync(caller, running, 1, 0);
            var afterwards = await other.AdmitAsync(caller, "after", 1, 0, CancellationToken.None);

            Assert.True(running.Allowed);
            Assert.False(whileRunning.Allowed);
            Assert.Equal("concurrency", whileRunning.RejectionReason);
            Assert.True(afterwards.Allowed);
        }
    }

    [Fact]
    public async Task One_slow_reply_is_not_an_outage_and_redis_stays_in_use()
    {
        var (connection, limiter) = await ConnectAsync(o => o.CommandTimeout = TimeSpan.FromMilliseconds(100));
        await using (connection)
        await using (limiter)
        {
            var caller = Key(rpm: 1000);
            Assert.False((await limiter.AdmitAsync(caller, "warm", 1, 0, CancellationToken.None)).Local);

            // Redis busy for 300 ms (a slow disk, a big command): the admission waiting on it gives up
            // at the timeout, but the probe that follows is answered, so Redis is never declared down.
            var sleep = _inspector.GetServer(_redis.ConnectionString).ExecuteAsync("DEBUG", "SLEEP", "0.3");
            await Task.Delay(20);
            var slow = await limiter.AdmitAsync(caller, "slow", 1, 0, CancellationToken.None);
            var watched = Stopwatch.StartNew();
            var alwaysAvailable = true;
            while (watched.Elapsed < TimeSpan.FromSeconds(1.2))
            {
                alwaysAvailable &= connection.IsAvailable;
                await Task.Delay(10);
            }

            await sleep;
            var after = await limiter.AdmitAsync(caller, "after", 1, 0, CancellationToken.None);

            Assert.True(slow.Local && slow.Uncertain);
            Assert.True(alwaysAvailable, "one slow reply declared Redis unreachable");
            Assert.False(after.Local);
        }
    }

    [Fact]
    public void Lease_settings_that_could_free_a_running_requests_slot_are_refused_at_start()
    {
        var validator = new StateOptionsValidator();

        var valid = validator.Validate(null, new StateOptions());
        var renewedTooRarely = validator.Validate(null, new StateOptions { LeaseDuration = TimeSpan.FromSeconds(5), LeaseRenewInterval = TimeSpan.FromSeconds(3) });

        Assert.True(valid.Succeeded);
        Assert.True(renewedTooRarely.Failed);
        Assert.Contains("LeaseRenewInterval", renewedTooRarely.FailureMessage, StringComparison.Ordinal);
    }
}
