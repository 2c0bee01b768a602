using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.Wire;
using StackExchange.Redis;

namespace ModelGateway.State.Redis;

/// <summary>
/// Limits shared by every replica: one Lua round trip per request, keys hash-tagged per virtual key
/// (and all deployments under one tag) so Redis Cluster works, time taken from Redis. A finished
/// request's settle (token and spend correction, concurrency release) rides along with the key's next
/// admission from this replica, which applies it first; a key that goes quiet is settled by a timer
/// within <see cref="SettleDelay"/>. While Redis is unreachable it follows the configured policy:
/// fail-open with a replica-local share of each limit, or fail-closed with 503 for keyed requests.
/// Provider limits of deployments always fail open.
/// </summary>
internal sealed partial class RedisRateLimiter : IRateLimiter, IAsyncDisposable
{
    /// <summary>The longest a finished request's settle waits for the key's next admission.</summary>
    internal static readonly TimeSpan SettleDelay = TimeSpan.FromMilliseconds(100);

    private readonly RedisConnection _redis;
    private readonly StateOptions _options;
    private readonly InMemoryRateLimiter _local;
    private readonly ILogger<RedisRateLimiter> _logger;
    private readonly long _leaseMilliseconds;
    private readonly ConcurrentDictionary<string, PendingSettles> _settles = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private readonly ITimer _settleTimer;

    public RedisRateLimiter(RedisConnection redis, IOptions<StateOptions> options, TimeProvider timeProvider, ILogger<RedisRateLimiter> logger)
    {
        _redis = redis;
        _options = options.Value;
        _logger = logger;
        _local = new InMemoryRateLimiter(timeProvider, 1.0 / _options.FailOpenReplicas);

        // A replica that dies mid-request never frees its slot; the lease does, after the longest a request may take.
        _leaseMilliseconds = (long)TimeSpan.FromMinutes(15).TotalMilliseconds;
        _settleTimer = timeProvider.CreateTimer(static state => ((RedisRateLimiter)state!).FlushOnTimer(), this, SettleDelay, SettleDelay);
    }

    public async ValueTask<KeyAdmission> AdmitAsync(CallerIdentity caller, string requestId, long estimatedTokens, double estimatedCost, CancellationToken cancellationToken)
    {
        if (!caller.HasLimits || caller.KeyId is null)
        {
            return KeyAdmission.Unlimited;
        }

        if (_redis.IsAvailable)
        {
            var carried = TakeSettles(caller.KeyId);
            try
            {
                var args = new RedisValue[10 + (SettleRecord.Width * (carried?.Count ?? 0))];
                args[0] = Limit(caller.RpmLimit);
                args[1] = Limit(caller.TpmLimit);
                args[2] = Limit(caller.MaxParallelRequests);
                args[3] = Limit(caller.DailyBudgetUsd);
                args[4] = Limit(caller.MonthlyBudgetUsd);
                args[5] = estimatedTokens;
                args[6] = estimatedCost.ToString("R", CultureInfo.InvariantCulture);
                args[7] = requestId;
                args[8] = _leaseMilliseconds;
                WriteSettles(args, 9, carried);
                var result = (RedisResult[])(await _redis.Database.ScriptEvaluateAsync(RedisScripts.AdmitKey, [KeyPrefix(caller.KeyId)], args).ConfigureAwait(false))!;
                return ToAdmission(caller, result, estimatedTokens, estimatedCost, requestId);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                Requeue(caller.KeyId, carried);
                _redis.ReportFailure(ex);
            }
        }

        if (_options.FailurePolicy == RedisFailurePolicy.FailClosed)
        {
            return new KeyAdmission
            {
                Allowed = false,
                Rejection = ApiError.Unavailable("The gateway's limit store is unreachable, so keyed requests are refused until it is back.", "limit_store_unavailable", TimeSpan.FromSeconds(1)) with { ShouldRetry = true },
                RejectionReason = "store_unavailable",
            };
        }

        var local = await _local.AdmitAsync(caller, requestId, estimatedTokens, estimatedCost, cancellationToken).ConfigureAwait(false);
        return new KeyAdmission
        {
            Allowed = local.Allowed,
            Rejection = local.Rejection,
            RejectionReason = local.RejectionReason,
            RequestLimit = local.RequestLimit,
            RequestsRemaining = local.RequestsRemaining,
            RequestsReset = local.RequestsReset,
            TokenLimit = local.TokenLimit,
            TokensRemaining = local.TokensRemaining,
            TokensReset = local.TokensReset,
            ReservedTokens = local.ReservedTokens,
            ReservedCost = local.ReservedCost,
            WindowSecond = local.WindowSecond,
            HoldsConcurrencySlot = local.HoldsConcurrencySlot,
            Local = true,
        };
    }

    public async ValueTask SettleAsync(CallerIdentity caller, KeyAdmission admission, long actualTokens, double actualCost)
    {
        if (!admission.Allowed || caller.KeyId is null || ReferenceEquals(admission, KeyAdmission.Unlimited))
        {
            return;
        }

        if (admission.Local)
        {
            await _local.SettleAsync(caller, admission, actualTokens, actualCost).ConfigureAwait(false);
            return;
        }

        if (!_redis.IsAvailable)
        {
            // The concurrency slot expires with its lease; the token and spend correction is lost.
            return;
        }

        // Usually not sent now: the key's next admission from this replica carries it (its script
        // applies it before deciding), or the timer sends it within SettleDelay if the key goes quiet.
        // Near the concurrency limit the slot is released before the request is done, so no replica
        // refuses a request for a slot that is already free (a sequential client behind a round-robin
        // balancer sends its next request the moment it has this answer).
        Enqueue(caller.KeyId, new SettleRecord(
            admission.WindowSecond,
            actualTokens - admission.ReservedTokens,
            admission.LeaseId ?? string.Empty,
            (actualCost - admission.ReservedCost).ToString("R", CultureInfo.InvariantCulture),
            admission.Day ?? string.Empty,
            admission.Month ?? string.Empty,
            string.Concat(Flag(caller.TpmLimit is not null), Flag(admission.HoldsConcurrencySlot), Flag(caller.DailyBudgetUsd is not null), Flag(caller.MonthlyBudgetUsd is not null))));
        if (admission.NearConcurrencyLimit)
        {
            await SettleNowAsync(caller.KeyId).ConfigureAwait(false);
        }
    }

    // Sends the key's pending settles and waits for Redis to apply them: the client already has its
    // answer, and any replica's next admission for the key then finds the slot free.
    private async ValueTask SettleNowAsync(string keyId)
    {
        var records = TakeSettles(keyId);
        if (records is not { Count: > 0 })
        {
            return;
        }

        var args = new RedisValue[1 + (SettleRecord.Width * records.Count)];
        WriteSettles(args, 0, records);
        try
        {
            await _redis.Database.ScriptEvaluateAsync(RedisScripts.SettleKey, [KeyPrefix(keyId)], args).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Requeue(keyId, records);
            _redis.ReportFailure(ex);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _settleTimer.DisposeAsync().ConfigureAwait(false);
        if (!_settles.IsEmpty && _redis.IsAvailable)
        {
            await FlushSettlesAsync().ConfigureAwait(false);
        }
    }

    private void Enqueue(string keyId, SettleRecord record)
    {
        while (true)
        {
            var pending = _settles.GetOrAdd(keyId, static _ => new PendingSettles());
            lock (pending)
            {
                // Taken between the lookup and the lock by an admission or the timer: start a new batch.
                if (!pending.Taken)
                {
                    pending.Records.Add(record);
                    return;
                }
            }
        }
    }

    private List<SettleRecord>? TakeSettles(string keyId)
    {
        if (!_settles.TryRemove(keyId, out var pending))
        {
            return null;
        }

        lock (pending)
        {
            pending.Taken = true;
            return pending.Records;
        }
    }

    private void Requeue(string keyId, List<SettleRecord>? records)
    {
        if (records is null)
        {
            return;
        }

        foreach (var record in records)
        {
            Enqueue(keyId, record);
        }
    }

    private static void WriteSettles(RedisValue[] args, int at, List<SettleRecord>? records)
    {
        args[at++] = records?.Count ?? 0;
        if (records is null)
        {
            return;
        }

        foreach (var record in records)
        {
            args[at++] = record.Second;
            args[at++] = record.TokenDelta;
            args[at++] = record.LeaseId;
            args[at++] = record.CostDelta;
            args[at++] = record.Day;
            args[at++] = record.Month;
            args[at++] = record.Flags;
        }
    }

    private void FlushOnTimer()
    {
        if (!_settles.IsEmpty && _redis.IsAvailable)
        {
            _ = FlushSettlesAsync();
        }
    }

    private async Task FlushSettlesAsync()
    {
        if (!await _flushing.WaitAsync(0).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            foreach (var keyId in _settles.Keys)
            {
                var records = TakeSettles(keyId);
                if (records is not { Count: > 0 })
                {
                    continue;
                }

                var args = new RedisValue[1 + (SettleRecord.Width * records.Count)];
                WriteSettles(args, 0, records);
                try
                {
                    await _redis.Database.ScriptEvaluateAsync(RedisScripts.SettleKey, [KeyPrefix(keyId)], args).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    Requeue(keyId, records);
                    _redis.ReportFailure(ex);
                    return;
                }
            }
        }
        catch (ObjectDisposedException)
        {
            // Shutting down: the connection went first.
        }
        finally
        {
            _flushing.Release();
        }
    }

    /// <summary>One finished request's corrections, as the settle script reads them.</summary>
    private readonly record struct SettleRecord(long Second, long TokenDelta, string LeaseId, string CostDelta, string Day, string Month, string Flags)
    {
        public const int Width = 7;
    }

    /// <summary>A key's settles waiting for its next admission; taken whole, then retired.</summary>
    private sealed class PendingSettles
    {
        public readonly List<SettleRecord> Records = new(4);
        public bool Taken;
    }

    public async ValueTask<DeploymentAdmission> TryAcquireDeploymentAsync(Deployment deployment, long estimatedTokens, CancellationToken cancellationToken)
    {
        if (deployment.RpmLimit is null && deployment.TpmLimit is null)
        {
            return DeploymentAdmission.Unlimited;
        }

        if (_redis.IsAvailable)
        {
            try
            {
                var result = (RedisResult[])(await _redis.Database.ScriptEvaluateAsync(
                    RedisScripts.AcquireDeployment,
                    [DeploymentPrefix(deployment.Name)],
                    [Limit(deployment.RpmLimit), Limit(deployment.TpmLimit), estimatedTokens]).ConfigureAwait(false))!;
                var allowed = (long)result[0] == 1;
                var wait = TimeSpan.FromSeconds((long)result[1]);
                if (wait > TimeSpan.Zero)
                {
                    // Spent, or refused: routing skips the deployment until the window moves, on this replica too.
                    deployment.State.MarkLimited(wait);
                }

                return new DeploymentAdmission(allowed, allowed ? TimeSpan.Zero : wait, allowed ? estimatedTokens : 0, (long)result[2], Local: false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                _redis.ReportFailure(ex);
            }
        }

        return await _local.TryAcquireDeploymentAsync(deployment, estimatedTokens, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask SettleDeploymentAsync(Deployment deployment, DeploymentAdmission admission, long actualTokens)
    {
        if (admission.ReservedTokens == 0)
        {
            return;
        }

        if (admission.Local)
        {
            await _local.SettleDeploymentAsync(deployment, admission, actualTokens).ConfigureAwait(false);
            return;
        }

        if (!_redis.IsAvailable)
        {
            return;
        }

        try
        {
            await _redis.Database.ScriptEvaluateAsync(RedisScripts.SettleDeployment, [DeploymentPrefix(deployment.Name)],
                [admission.WindowSecond, actualTokens - admission.ReservedTokens], CommandFlags.FireAndForget).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _redis.ReportFailure(ex);
        }
    }

    private static KeyAdmission ToAdmission(CallerIdentity caller, RedisResult[] result, long estimatedTokens, double estimatedCost, string requestId)
    {
        var reason = (string)result[0]!;
        var requests = (long)result[1];
        var tokens = (long)result[2];
        var requestsOldest = (long)result[3];
        var tokensOldest = (long)result[4];
        var now = (long)result[5];
        var requestsReset = requestsOldest > 0 ? TimeSpan.FromSeconds(requestsOldest + 60 - now) : TimeSpan.Zero;
        var tokensReset = tokensOldest > 0 ? TimeSpan.FromSeconds(tokensOldest + 60 - now) : TimeSpan.Zero;
        var admitted = reason.Length == 0;
        return new KeyAdmission
        {
            Allowed = admitted,
            Rejection = admitted ? null : Rejection(reason, caller, estimatedTokens, requestsReset, tokensReset),
            RejectionReason = admitted ? null : reason,
            RequestLimit = caller.RpmLimit,
            RequestsRemaining = Math.Max(0, (caller.RpmLimit ?? 0) - requests),
            RequestsReset = requestsReset,
            TokenLimit = caller.TpmLimit,
            TokensRemaining = Math.Max(0, (caller.TpmLimit ?? 0) - tokens),
            TokensReset = tokensReset,
            ReservedTokens = admitted ? estimatedTokens : 0,
            ReservedCost = admitted ? estimatedCost : 0,
            WindowSecond = now,
            HoldsConcurrencySlot = admitted && caller.MaxParallelRequests is not null,
            NearConcurrencyLimit = admitted && caller.MaxParallelRequests is { } parallel && (long)result[6] * 2 >= parallel,
            LeaseId = requestId,
            Day = (string?)result[7],
            Month = (string?)result[8],
        };
    }

    private static ApiError Rejection(string reason, CallerIdentity caller, long estimatedTokens, TimeSpan requestsReset, TimeSpan tokensReset) => reason switch
    {
        "budget_daily" => Budget("daily", caller.DailyBudgetUsd ?? 0),
        "budget_monthly" => Budget("monthly", caller.MonthlyBudgetUsd ?? 0),
        "concurrency" => ApiError.RateLimited($"Too many concurrent requests for this key (limit {caller.MaxParallelRequests}).", TimeSpan.FromSeconds(1)),
        "requests" => ApiError.RateLimited($"Rate limit reached for requests: limit {caller.RpmLimit} per minute.", Positive(requestsReset)),
        _ => ApiError.RateLimited($"Rate limit reached for tokens: limit {caller.TpmLimit} per minute, this request needs about {estimatedTokens}.", Positive(tokensReset), "tokens"),
    };

    private static TimeSpan Positive(TimeSpan wait) => wait > TimeSpan.Zero ? wait : TimeSpan.FromSeconds(1);

    private static ApiError Budget(string period, double budget) => new(
        429,
        string.Create(CultureInfo.InvariantCulture, $"This key has spent its {period} budget of ${budget:0.##}."),
        "insufficient_quota",
        "insufficient_quota") { ShouldRetry = false };

    // Everything of one key shares the hash tag {k:ID}; everything of deployments shares {mg:deployments}.
    private static RedisKey KeyPrefix(string keyId) => $"{{k:{keyId}}}";

    private static RedisKey DeploymentPrefix(string deployment) => $"{{mg:deployments}}:{deployment}";

    private static RedisValue Limit(long? limit) => limit ?? -1;

    private static RedisValue Limit(double? limit) => limit is { } value ? value.ToString("R", CultureInfo.InvariantCulture) : "-1";

    private static string Flag(bool value) => value ? "1" : "0";
}
