using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.State;
using ModelGateway.State.Redis;
using StackExchange.Redis;

namespace ModelGateway.Routing.Quotas;

/// <summary>
/// Shares provider quota readings between replicas through Redis, off the request path: every
/// <c>State:QuotaShareInterval</c> each replica writes its newest reading per deployment to
/// <c>{mg:quota}:&lt;deployment&gt;</c> (a script keeps whichever reading is newer), counts the replicas
/// alive, and reads the others' readings back. A 429 one replica took thus holds the others back too,
/// and each replica takes only its share of what a provider says is left.
/// </summary>
internal sealed partial class QuotaSharing(
    RedisConnection redis,
    DeploymentStateRegistry states,
    IOptions<StateOptions> options,
    TimeProvider timeProvider,
    ILogger<QuotaSharing> logger) : BackgroundService
{
    private const string Prefix = "{mg:quota}:";
    private static readonly RedisKey ReplicasKey = "{mg:quota}:replicas";

    // A replica that has not said it is alive for this long no longer takes a share.
    private static readonly TimeSpan ReplicaTimeout = TimeSpan.FromSeconds(3);

    private readonly RedisValue _replicaId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    // Completed by a 429's lesson so it goes out at once rather than at the next interval; replaced after each pass.
    private TaskCompletionSource _lesson = new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.QuotaShareInterval;
        Action nudge = () => Volatile.Read(ref _lesson).TrySetResult();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var lesson = Volatile.Read(ref _lesson);
                await Task.WhenAny(Task.Delay(interval, timeProvider, stoppingToken), lesson.Task).ConfigureAwait(false);
                stoppingToken.ThrowIfCancellationRequested();
                if (lesson.Task.IsCompleted)
                {
                    Interlocked.CompareExchange(ref _lesson, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), lesson);
                }

                if (redis.IsAvailable)
                {
                    await ShareAsync(nudge).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down.
        }
    }

    private async Task ShareAsync(Action nudge)
    {
        try
        {
            var all = states.All;
            var database = redis.Database;
            foreach (var state in all)
            {
                state.Quota.Lesson = nudge;
                if (state.Quota.TryTakeShare(out var share))
                {
                    // Fire and forget: a reading is advisory, and the next one follows within an interval.
                    _ = database.ScriptEvaluateAsync(Write, [Prefix + state.Name], Arguments(share), CommandFlags.FireAndForget);
                }
            }

            var now = timeProvider.GetUtcNow().ToUnixTimeMilliseconds();
            var alive = database.ScriptEvaluateAsync(Alive, [ReplicasKey], [_replicaId, now, now - (long)ReplicaTimeout.TotalMilliseconds]);
            var reads = new Task<HashEntry[]>[all.Count];
            var i = 0;
            foreach (var state in all)
            {
                reads[i++] = database.HashGetAllAsync(Prefix + state.Name);
            }

            var replicas = (int)(long)(await redis.WaitAsync(alive, "quota").ConfigureAwait(false));
            await redis.WaitAsync(Task.WhenAll(reads), "quota").ConfigureAwait(false);
            i = 0;
            foreach (var state in all)
            {
                state.Quota.Replicas = replicas;
                if (Parse(reads[i++].Result) is { } share)
                {
                    state.Quota.Adopt(share);
                }
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            redis.ReportFailure(ex);
        }
        catch (ObjectDisposedException)
        {
            // Shutting down: the connection went first.
        }
        catch (Exception ex) when (ex is FormatException or InvalidCastException)
        {
            LogUnreadable(logger, ex.Message);
        }
    }

    private RedisValue[] Arguments(in SharedQuota share) =>
    [
        share.At, share.Requests, share.RequestsLimit, share.RequestsResetAt, share.GraceEndsAt,
        share.Tokens, share.TokensLimit, share.TokensResetAt, share.Learnt ? 1 : 0, share.Streak, share.StreakUntil, _replicaId,
    ];

    private SharedQuota? Parse(HashEntry[] entries)
    {
        if (entries.Length == 0)
        {
            return null;
        }

        long at = 0, requests = -1, requestsLimit = -1, requestsReset = 0, grace = 0, tokens = -1, tokensLimit = -1, tokensReset = 0, streakUntil = 0;
        var learnt = false;
        var streak = 0;
        foreach (var entry in entries)
        {
            switch ((string?)entry.Name)
            {
                case "by" when entry.Value == _replicaId:
                    // Our own reading, already here (or replaced by a newer one of ours).
                    return null;
                case "at": at = Long(entry.Value); break;
                case "requests": requests = Long(entry.Value); break;
                case "requests_limit": requestsLimit = Long(entry.Value); break;
                case "requests_reset": requestsReset = Long(entry.Value); break;
                case "grace": grace = Long(entry.Value); break;
                case "tokens": tokens = Long(entry.Value); break;
                case "tokens_limit": tokensLimit = Long(entry.Value); break;
                case "tokens_reset": tokensReset = Long(entry.Value); break;
                case "learnt": learnt = entry.Value == 1; break;
                case "streak": streak = (int)Long(entry.Value); break;
                case "streak_until": streakUntil = Long(entry.Value); break;
            }
        }

        return at == 0 ? null : new SharedQuota(at, requests, requestsLimit, requestsReset, grace, tokens, tokensLimit, tokensReset, learnt, streak, streakUntil);
    }

    private static long Long(RedisValue value) => long.Parse((string)value!, NumberStyles.Integer, CultureInfo.InvariantCulture);

    /// <summary>Keeps the newer reading. KEYS[1] = <c>{mg:quota}:&lt;deployment&gt;</c>. ARGV = the reading's fields in <see cref="Arguments"/> order.</summary>
    private const string Write = """
        local at = tonumber(ARGV[1])
        if at <= tonumber(redis.call('HGET', KEYS[1], 'at') or '0') then return 0 end
        redis.call('HSET', KEYS[1], 'at', ARGV[1], 'requests', ARGV[2], 'requests_limit', ARGV[3], 'requests_reset', ARGV[4], 'grace', ARGV[5],
          'tokens', ARGV[6], 'tokens_limit', ARGV[7], 'tokens_reset', ARGV[8], 'learnt', ARGV[9], 'streak', ARGV[10], 'streak_until', ARGV[11], 'by', ARGV[12])
        redis.call('PEXPIRE', KEYS[1], 120000)
        return 1
        """;

    /// <summary>Marks this replica alive and counts the live ones. KEYS[1] = replicas set. ARGV = replica id, now (ms), oldest alive (ms).</summary>
    private const string Alive = """
        redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
        redis.call('PEXPIRE', KEYS[1], 60000)
        return redis.call('ZCARD', KEYS[1])
        """;

    [LoggerMessage(EventId = 3701, Level = LogLevel.Warning, Message = "A shared quota reading in Redis could not be read: {Reason}")]
    private static partial void LogUnreadable(ILogger logger, string reason);
}
