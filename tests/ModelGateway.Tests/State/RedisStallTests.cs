using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.State;
using ModelGateway.Tests.Infrastructure;
using StackExchange.Redis;

namespace ModelGateway.Tests.State;

/// <summary>
/// Three gateway processes on one Redis keep their books exact when Redis freezes (SIGSTOP) and when a
/// replica is killed mid-request: slots come back within a lease, usage and spend count every served
/// request once, budgets hold through fail-open, and no request waits on Redis past the documented bound.
/// The replicas run with the default State:CommandTimeout (250 ms) and two-second leases.
/// </summary>
[Collection(RedisStallCollection.Name)]
public sealed class RedisStallTests(RedisStallFixture fixture) : IClassFixture<RedisStallFixture>, IAsyncLifetime
{
    private const string MasterKey = RedisStallFixture.MasterKey;
    private static readonly TimeSpan CommandTimeout = new StateOptions().CommandTimeout;

    private GatewayProcess[] Replicas => fixture.Replicas;

    private FakeUpstreamServer Upstream => fixture.Upstream;

    // A killed replica from an earlier test is back, and every replica is on Redis, before each test.
    public async Task InitializeAsync()
    {
        await fixture.EnsureRunningAsync();
        await WaitUntilAllOnRedisAsync();
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task After_redis_freezes_under_load_on_three_replicas_limits_usage_and_spend_are_exact_again_within_seconds()
    {
        var (counted, countedId) = await CreateKeyAsync("""{"name":"stall-counted","rpm":100000,"tpm":100000000,"budget_daily_usd":1000}""");
        var (parallel, parallelId) = await CreateKeyAsync("""{"name":"stall-parallel","max_parallel_requests":3}""");

        // Every replica checks both keys once before the freeze: a replica that has never seen a key cannot vouch
        // for it while the key store is frozen (503 key_store_unavailable is right then), and on a loaded host the
        // load alone may not reach every replica with every key within the first second.
        foreach (var replica in Replicas)
        {
            Assert.Equal(HttpStatusCode.OK, (await ChatAsync(replica, counted, "stall-fast")).Item1);
            Assert.Equal(HttpStatusCode.OK, (await ChatAsync(replica, parallel, "stall-slow")).Item1);
        }

        // Load on every replica: a counted key with fast answers, a parallel-limited key with slower ones.
        using var stop = new CancellationTokenSource();
        var servedCounted = Replicas.Length; // the warm-up's answers count too
        var unexpected = new ConcurrentBag<string>();
        var workers = new List<Task>();
        for (var w = 0; w < 4; w++)
        {
            var worker = w;
            workers.Add(Task.Run(async () =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    var (status, body, _) = await ChatAsync(Replicas[(worker + i) % 3], counted, "stall-fast");
                    if (status == HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref servedCounted);
                    }
                    else
                    {
                        unexpected.Add($"{status}: {body}");
                    }
                }
            }));
            workers.Add(Task.Run(async () =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    var (status, body, _) = await ChatAsync(Replicas[(worker + i) % 3], parallel, "stall-slow");
                    if (status is not HttpStatusCode.OK and not HttpStatusCode.TooManyRequests)
                    {
                        unexpected.Add($"{status}: {body}");
                    }
                }
            }));
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
        await fixture.Redis.FreezeAsync();

        // Longer than the command timeout and than the outage confirmation: requests first wait out the
        // timeout (their admissions stuck in Redis's buffer), then the replicas serve from local shares.
        await Task.Delay(TimeSpan.FromSeconds(3));
        await fixture.Redis.ThawAsync();
        var thawed = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(1));
        await stop.CancelAsync();
        await Task.WhenAll(workers);
        Assert.True(unexpected.IsEmpty, "unexpected answers under load: " + string.Join(" | ", unexpected.Take(5)));

        // Parallel limits work again within seconds: the key gets exactly its three slots, on any replica,
        // neither fewer (slots leaked by admissions that ran late) nor more (slots lost).
        await EventuallyAsync(() => AdmitsExactlyAsync(parallel, 3), TimeSpan.FromSeconds(8), "the parallel limit did not come back to exactly 3");
        Assert.True(thawed.Elapsed < TimeSpan.FromSeconds(12), $"the parallel limit took {thawed.Elapsed} to come back");

        // Usage equals what the upstream served, exactly, on every replica's report, and stays so.
        var upstreamServed = Upstream.Requests.Count(r => r.Model == "stall-fast-model" && r.Completion.IsCompletedSuccessfully && r.Completion.Result == RequestOutcome.Completed);
        Assert.Equal(servedCounted, upstreamServed);
        await EventuallyAsync(async () => await UsageAsync(countedId) == (servedCounted, servedCounted * 11L, servedCounted * 7L), TimeSpan.FromSeconds(10),
            $"usage did not reach the {servedCounted} served requests: {await UsageAsync(countedId)}");
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        foreach (var replica in Replicas)
        {
            Assert.Equal((servedCounted, servedCounted * 11L, servedCounted * 7L), await UsageAsync(countedId, replica));
        }

        // The key's windows and budget hold what was served, once: nothing to refuse it early (phantom
        // reservations, double counts) or late (spend lost across the stall); no booking left open.
        var database = fixture.Database;
        await EventuallyAsync(async () => await database.HashLengthAsync($"{{k:{countedId}}}:open") == 0, TimeSpan.FromSeconds(5), "bookings were left open");
        Assert.Equal(servedCounted, (long)await database.HashGetAsync($"{{k:{countedId}}}:rpm", "s"));
        Assert.Equal(servedCounted * 18L, (long)await database.HashGetAsync($"{{k:{countedId}}}:tpm", "s"));
        Assert.Equal(servedCounted * 0.007, await SpendTodayAsync(countedId), 6);
        Assert.Equal(0, await database.SortedSetLengthAsync($"{{k:{parallelId}}}:parallel"));
    }

    [Fact]
    public async Task A_replica_killed_with_slots_in_flight_frees_them_so_the_survivors_admit_the_full_parallelism_within_seconds()
    {
        var (key, _) = await CreateKeyAsync("""{"name":"crash-parallel","max_parallel_requests":3}""");
        var victim = Replicas[2];

        // Three requests in flight on the replica about to die hold all three slots.
        var held = Enumerable.Range(0, 3).Select(_ => ChatAsync(victim, key, "crash-held")).ToArray();
        await EventuallyAsync(() => Task.FromResult(Upstream.Requests.Count(r => r.Model == "crash-held-model") == 3), TimeSpan.FromSeconds(10), "the held requests did not reach the upstream");
        var (refused, body, _) = await ChatAsync(Replicas[0], key, "probe");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused);
        Assert.Contains("concurrent", body, StringComparison.Ordinal);

        await victim.KillAsync();
        var killed = Stopwatch.StartNew();
        await Task.WhenAll(held.Select(h => h.ContinueWith(static _ => { }, TaskScheduler.Default)));

        // The dead replica never releases or renews its slots: their leases (2 s here) run out, and the
        // survivors then admit all three at once.
        await EventuallyAsync(() => AdmitsExactlyAsync(key, 3, Replicas[..2]), TimeSpan.FromSeconds(10), "the survivors did not get the key's three slots back");
        Assert.True(killed.Elapsed < RedisStallFixture.LeaseDuration + TimeSpan.FromSeconds(5), $"the slots took {killed.Elapsed} to come back");
    }

    [Fact]
    public async Task A_budgeted_key_served_through_a_redis_outage_ends_within_its_budget_plus_the_outage_allowance()
    {
        const double Budget = 0.20;
        const double Cost = 0.007;
        var (key, id) = await CreateKeyAsync("""{"name":"outage-budget","budget_daily_usd":0.2}""");

        // Before the outage: twelve requests, round robin, so each replica has read the key's spend lately.
        var served = 0;
        for (var i = 0; i < 12; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await ChatAsync(Replicas[i % 3], key, "budget")).Status);
            served++;
        }

        // During the outage every replica serves its share of what was left, then refuses the key.
        await fixture.Redis.FreezeAsync();
        var refusedBy = new HashSet<int>();
        try
        {
            for (var i = 0; i < 120 && refusedBy.Count < 3; i++)
            {
                var (status, body, _) = await ChatAsync(Replicas[i % 3], key, "budget");
                if (status == HttpStatusCode.OK)
                {
                    served++;
                }
                else
                {
                    Assert.Equal(HttpStatusCode.TooManyRequests, status);
                    Assert.Contains("insufficient_quota", body, StringComparison.Ordinal);
                    refusedBy.Add(i % 3);
                }
            }
        }
        finally
        {
            await fixture.Redis.ThawAsync();
        }

        Assert.Equal(3, refusedBy.Count);
        await WaitUntilAllOnRedisAsync();

        // Back on Redis, the outage spend is in the key's budget: the books equal what was served, and
        // stay within the budget plus the documented allowance (one request's estimate per replica, plus
        // what the other replicas spent after a replica last read the key: at most two requests here).
        await EventuallyAsync(async () => Math.Abs(await SpendTodayAsync(id) - (served * Cost)) < 1e-6, TimeSpan.FromSeconds(10),
            $"the budget did not reach the {served} served requests: {await SpendTodayAsync(id)}");
        var spent = await SpendTodayAsync(id);
        Assert.True(spent <= Budget + ((2 * 3) - 1) * Cost + 1e-9, $"spent {spent} of a {Budget} budget");
        Assert.Equal(Upstream.Requests.Count(r => r.Model == "budget-model"), served);
        foreach (var replica in Replicas)
        {
            var (status, body, _) = await ChatAsync(replica, key, "budget");
            Assert.Equal(HttpStatusCode.TooManyRequests, status);
            Assert.Contains("insufficient_quota", body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task While_redis_is_frozen_no_request_waits_on_it_longer_than_the_command_timeout_plus_the_margin()
    {
        var (warm, _) = await CreateKeyAsync("""{"name":"frozen-warm","rpm":100000}""");
        var (cold, _) = await CreateKeyAsync("""{"name":"frozen-cold","rpm":100000}""");
        foreach (var replica in Replicas)
        {
            Assert.Equal(HttpStatusCode.OK, (await ChatAsync(replica, warm, "frozen")).Status);
        }

        var bound = CommandTimeout + StateOptions.WaitMargin;
        var answers = new ConcurrentBag<(HttpStatusCode Status, string Body, TimeSpan Elapsed)>();
        await fixture.Redis.FreezeAsync();
        try
        {
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Replicas.Select(async (replica, r) =>
            {
                // A key this replica has cached (admission only), and one it has never seen (key lookup first).
                answers.Add(await ChatAsync(replica, cold, "frozen"));
                while (clock.Elapsed < TimeSpan.FromSeconds(2.5))
                {
                    answers.Add(await ChatAsync(replica, warm, "frozen"));
                }
            }));
        }
        finally
        {
            await fixture.Redis.ThawAsync();
        }

        // What a request sees: a cached key is served (fail-open), an unknown one is refused with 503.
        Assert.All(answers, a => Assert.True(a.Status == HttpStatusCode.OK || (a.Status == HttpStatusCode.ServiceUnavailable && a.Body.Contains("key_store_unavailable", StringComparison.Ordinal)), $"{a.Status}: {a.Body}"));
        Assert.Contains(answers, a => a.Status == HttpStatusCode.ServiceUnavailable);

        // The bound as the gateway measures it: every wait on Redis any replica has recorded (this test's
        // and the earlier stalls') is at most CommandTimeout + WaitMargin, a bucket edge of the histogram.
        var waitedLong = 0L;
        foreach (var replica in Replicas)
        {
            var scrape = await replica.MetricsAsync();
            var histogram = WaitHistogram.Parse(scrape, bound);
            Assert.True(histogram.Count > 0, "no waits were recorded");
            Assert.True(histogram.Count == histogram.AtMostBound,
                $"{histogram.Count - histogram.AtMostBound} of {histogram.Count} waits on Redis exceeded {bound.TotalMilliseconds} ms:\n{string.Join('\n', scrape.Split('\n').Where(l => l.StartsWith("modelgateway_state", StringComparison.Ordinal)))}\n{string.Join('\n', replica.Output.Split('\n').Where(l => l.Contains("DBG", StringComparison.Ordinal)))}");
            waitedLong += histogram.Count - histogram.AtMostShortWait;
        }

        // The freeze was felt (requests did wait out the timeout). From outside, the client also pays for
        // HTTP and for scheduling on a shared host, so only coarser checks: typical requests stay near the
        // bound, and none waits seconds (as requests did when the client library's timeouts decided).
        Assert.True(waitedLong > 0, "no request waited on the frozen Redis");
        var ordered = answers.OrderBy(a => a.Elapsed).ToList();
        var median = ordered[ordered.Count / 2];
        var slowest = ordered[^1];
        Assert.True(median.Elapsed < bound + TimeSpan.FromMilliseconds(250), $"half the requests took {median.Elapsed.TotalMilliseconds:0} ms or more");
        Assert.True(slowest.Elapsed < bound + TimeSpan.FromSeconds(1.5),
            $"a request took {slowest.Elapsed.TotalMilliseconds:0} ms: {slowest.Status} {slowest.Body}\n{string.Join("\n---\n", Replicas.Select(r => Tail(r.Output)))}");
    }

    // Sends `slots` requests that hold the key's slots for a moment, spread over the replicas, then one
    // more while they run: true when all of the first are served and the extra one is refused.
    private async Task<bool> AdmitsExactlyAsync(string key, int slots, GatewayProcess[]? replicas = null)
    {
        replicas ??= Replicas;
        var holding = Enumerable.Range(0, slots).Select(i => ChatAsync(replicas[i % replicas.Length], key, "stall-hold")).ToArray();
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        var (extra, body, _) = await ChatAsync(replicas[slots % replicas.Length], key, "probe");
        var answers = await Task.WhenAll(holding);
        return answers.All(a => a.Status == HttpStatusCode.OK)
            && extra == HttpStatusCode.TooManyRequests && body.Contains("concurrent", StringComparison.Ordinal);
    }

    private async Task<(string Secret, string Id)> CreateKeyAsync(string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await Replicas[0].Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return (json.GetProperty("key").GetString()!, json.GetProperty("id").GetString()!);
    }

    private static async Task<(HttpStatusCode Status, string Body, TimeSpan Elapsed)> ChatAsync(GatewayProcess replica, string key, string model)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = GatewayHost.Json($$"""{"model":"{{model}}","max_tokens":7,"messages":[{"role":"user","content":"hi"}]}"""),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var clock = Stopwatch.StartNew();
        using var response = await replica.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        // The request id leads the body, so a failure message can be matched to the replica's log.
        var id = response.Headers.TryGetValues("x-request-id", out var ids) ? ids.First() : "?";
        return (response.StatusCode, $"[{id}] {body}", clock.Elapsed);
    }

    // Served requests (requests minus errors), input and output tokens of one key, from one replica's report.
    private async Task<(long Served, long Input, long Output)> UsageAsync(string keyId, GatewayProcess? replica = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"admin/usage?key={keyId}&group_by=key");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await (replica ?? Replicas[1]).Http.SendAsync(request);
        var rows = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
        return (rows.EnumerateArray().Sum(r => r.GetProperty("requests").GetInt64() - r.GetProperty("errors").GetInt64()),
            rows.EnumerateArray().Sum(r => r.GetProperty("input_tokens").GetInt64()),
            rows.EnumerateArray().Sum(r => r.GetProperty("output_tokens").GetInt64()));
    }

    private async Task<double> SpendTodayAsync(string keyId)
    {
        var seconds = (long)((RedisResult[])(await fixture.Database.ExecuteAsync("TIME"))!)[0];
        var day = DateTimeOffset.FromUnixTimeSeconds(seconds).ToString("yyyyMMdd", CultureInfo.InvariantCulture);
        var value = await fixture.Database.StringGetAsync($"{{k:{keyId}}}:spend:d:{day}");
        return value.IsNull ? 0 : double.Parse((string)value!, CultureInfo.InvariantCulture);
    }

    private async Task WaitUntilAllOnRedisAsync()
    {
        foreach (var replica in Replicas)
        {
            await EventuallyAsync(async () =>
            {
                using var response = await replica.Http.GetAsync("healthz/ready");
                using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                return json.RootElement.GetProperty("checks").GetProperty("redis").GetProperty("status").GetString() == "healthy";
            }, TimeSpan.FromSeconds(15), "a replica did not get back on Redis");
        }
    }

    private async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan within, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > within)
            {
                Assert.Fail($"{what} (after {clock.Elapsed}). Replica output:\n{string.Join("\n---\n", Replicas.Select(r => Tail(r.Output)))}");
            }

            await Task.Delay(100);
        }
    }

    private static string Tail(string output) => output.Length > 4000 ? output[^4000..] : output;

    /// <summary>The modelgateway.state.wait.duration histogram of one scrape, summed over operations.</summary>
    private readonly record struct WaitHistogram(long Count, long AtMostBound, long AtMostShortWait)
    {
        private const string Name = "modelgateway_state_wait_duration_seconds";

        public static WaitHistogram Parse(string scrape, TimeSpan bound)
        {
            long count = 0, atMostBound = 0, atMostShort = 0;
            var boundEdge = $"le=\"{bound.TotalSeconds.ToString(CultureInfo.InvariantCulture)}\"";
            foreach (var line in scrape.Split('\n'))
            {
                if (line.StartsWith(Name + "_count", StringComparison.Ordinal))
                {
                    count += Value(line);
                }
                else if (line.StartsWith(Name + "_bucket", StringComparison.Ordinal) && line.Contains(boundEdge, StringComparison.Ordinal))
                {
                    atMostBound += Value(line);
                }
                else if (line.StartsWith(Name + "_bucket", StringComparison.Ordinal) && line.Contains("le=\"0.025\"", StringComparison.Ordinal))
                {
                    atMostShort += Value(line);
                }
            }

            return new WaitHistogram(count, atMostBound, atMostShort);
        }

        private static long Value(string line) => long.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// The stall tests freeze Redis and kill replicas, and measure waits: they run alone, after the
/// parallel tests, so other tests' load neither disturbs them nor is disturbed by them.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RedisStallCollection
{
    public const string Name = "Redis stalls";
}

/// <summary>Three replicas with short leases on one Redis (with an append-only file, as production should run).</summary>
public sealed class RedisStallFixture : IAsyncLifetime
{
    public const string MasterKey = "mk-stall-test";
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(2);

    private string _directory = null!;
    private string _config = null!;
    private Dictionary<string, string> _settings = null!;
    private ConnectionMultiplexer _connection = null!;

    internal FakeUpstreamServer Upstream { get; private set; } = null!;

    internal RedisServer Redis { get; private set; } = null!;

    internal GatewayProcess[] Replicas { get; } = new GatewayProcess[3];

    internal IDatabase Database => _connection.GetDatabase();

    public async Task InitializeAsync()
    {
        Upstream = await FakeUpstreamServer.StartAsync();
        Upstream.SetBehaviorForModel("stall-fast-model", new UpstreamBehavior { PromptTokens = 11, CompletionTokens = 7 });
        Upstream.SetBehaviorForModel("stall-slow-model", new UpstreamBehavior { HeaderDelay = TimeSpan.FromMilliseconds(150), PromptTokens = 11, CompletionTokens = 7 });
        Upstream.SetBehaviorForModel("stall-hold-model", new UpstreamBehavior { HeaderDelay = TimeSpan.FromSeconds(1.5), PromptTokens = 11, CompletionTokens = 7 });
        Upstream.SetBehaviorForModel("crash-held-model", new UpstreamBehavior { HeaderDelay = TimeSpan.FromSeconds(60) });
        Upstream.SetBehaviorForModel("budget-model", new UpstreamBehavior { PromptTokens = 11, CompletionTokens = 7 });
        Redis = await RedisServer.StartAsync(persistent: true);
        _connection = await ConnectionMultiplexer.ConnectAsync(Redis.ConnectionString + ",syncTimeout=10000,asyncTimeout=10000");
        _directory = Directory.CreateTempSubdirectory("modelgateway-stall-").FullName;
        _config = Path.Combine(_directory, "routing.yaml");

        // Input is free and output costs $0.001 a token: with max_tokens 7 and 7 tokens answered, a
        // request's estimate and its cost are both exactly $0.007.
        await File.WriteAllTextAsync(_config, $$"""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: "{{Upstream.OpenAIBaseUrl}}" }
            deployments:
              - { name: fast, provider: p, model: stall-fast-model, pricing: { input: 0, output: 1000 } }
              - { name: slow, provider: p, model: stall-slow-model }
              - { name: hold, provider: p, model: stall-hold-model }
              - { name: held, provider: p, model: crash-held-model }
              - { name: budget, provider: p, model: budget-model, pricing: { input: 0, output: 1000 } }
              - { name: probe, provider: p, model: probe-model }
              - { name: frozen, provider: p, model: frozen-model }
            routes:
              - { name: stall-fast, targets: [fast] }
              - { name: stall-slow, targets: [slow] }
              - { name: stall-hold, targets: [hold] }
              - { name: crash-held, targets: [held] }
              - { name: budget, targets: [budget] }
              - { name: probe, targets: [probe] }
              - { name: frozen, targets: [frozen] }
            """);
        _settings = new Dictionary<string, string>
        {
            ["State:Redis"] = Redis.ConnectionString,
            ["State:LeaseDuration"] = "00:00:02",
            ["State:LeaseRenewInterval"] = "00:00:00.500",
            ["State:FailOpenReplicas"] = "3",
            ["State:UsageFlushInterval"] = "00:00:00.250",
            ["Auth:Mode"] = "keys",
            ["Admin:MasterKey"] = MasterKey,
            ["Observability:ConsoleLog"] = "true",
        };
        var started = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => GatewayProcess.StartAsync(_config, _settings)));
        started.CopyTo(Replicas, 0);
    }

    /// <summary>Starts again any replica a test killed.</summary>
    public async Task EnsureRunningAsync()
    {
        for (var i = 0; i < Replicas.Length; i++)
        {
            if (Replicas[i].HasExited)
            {
                await Replicas[i].DisposeAsync();
                Replicas[i] = await GatewayProcess.StartAsync(_config, _settings);
            }
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in Replicas)
        {
            if (replica is not null)
            {
                await replica.DisposeAsync();
            }
        }

        await _connection.DisposeAsync();
        await Redis.DisposeAsync();
        await Upstream.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
