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
/// <remarks>
/// <para>Every write may be repeated without effect: an admission books its request in Redis under an
/// operation id, and a settle applies only while that booking exists; outage batches carry ids too.
/// So anything that timed out is simply sent again, and a command that a frozen Redis runs late does
/// no harm.</para>
/// <para>An admission that times out may have been applied, may be applied later, or never: the request
/// is answered by the failure policy, and its settle (served or refused) reconciles whichever it was.</para>
/// <para>A concurrency slot is a lease of <c>State:LeaseDuration</c>, renewed every
/// <c>State:LeaseRenewInterval</c> while its request runs here, so a crashed replica's slots free
/// themselves within one lease.</para>
/// <para>Fail-open keeps the books: what is served locally is written into the key's windows and
/// budgets when Redis returns, and a budgeted key spends locally only its share of what was left.</para>
/// </remarks>
internal sealed partial class RedisRateLimiter : IRateLimiter, IAsyncDisposable
{
    /// <summary>The longest a finished request's settle waits for the key's next admission.</summary>
    internal static readonly TimeSpan SettleDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// How long Redis keeps a request's booking without its settle (the replica died, or could not
    /// reach Redis for this long): a request settled later keeps its reserved estimate as its cost.
    /// </summary>
    internal static readonly TimeSpan BookingRetention = TimeSpan.FromHours(6);

    private const int MaxIdsPerRenewal = 512;

    private readonly RedisConnection _redis;
    private readonly StateOptions _options;
    private readonly InMemoryRateLimiter _local;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RedisRateLimiter> _logger;
    private readonly long _leaseMilliseconds;
    private readonly long _retentionMilliseconds;
    private readonly double _failOpenShare;
    private readonly ulong _operationPrefix = (ulong)Random.Shared.NextInt64();
    private long _operationCounter;
    private readonly ConcurrentDictionary<string, PendingWrites> _pending = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, KeyBooks> _books = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, LeaseSet> _leases = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private readonly ITimer _settleTimer;
    private readonly ITimer _renewTimer;
    private int _renewing;

    public RedisRateLimiter(RedisConnection redis, IOptions<StateOptions> options, TimeProvider timeProvider, ILogger<RedisRateLimiter> logger)
    {
        _redis = redis;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
        _failOpenShare = 1.0 / _options.FailOpenReplicas;
        _local = new InMemoryRateLimiter(timeProvider, _failOpenShare);
        _leaseMilliseconds = (long)_options.LeaseDuration.TotalMilliseconds;
        _retentionMilliseconds = (long)BookingRetention.TotalMilliseconds;
        _settleTimer = timeProvider.CreateTimer(static state => ((RedisRateLimiter)state!).FlushOnTimer(), this, SettleDelay, SettleDelay);
        _renewTimer = timeProvider.CreateTimer(static state => _ = ((RedisRateLimiter)state!).RenewLeasesAsync(), this, _options.LeaseRenewInterval, _options.LeaseRenewInterval);

        // Back from an outage: what waited is written at once, and running requests get their slots back.
        _redis.Restored += () =>
        {
            _ = FlushPendingAsync();
            _ = RenewLeasesAsync();
        };
    }

    public async ValueTask<KeyAdmission> AdmitAsync(CallerIdentity caller, string requestId, long estimatedTokens, double estimatedCost, CancellationToken cancellationToken)
    {
        if (!caller.HasLimits || caller.KeyId is null)
        {
            return KeyAdmission.Unlimited;
        }

        var keyId = caller.KeyId;

        // A key lookup on a cache miss already spent part of the request's wait on Redis.
        var budget = _options.CommandTimeout - caller.StoreWait;
        if (!_redis.IsAvailable || budget <= TimeSpan.Zero)
        {
            if (caller.StoreWait > TimeSpan.Zero)
            {
                _redis.Metrics.Waited("admit", caller.StoreWait);
            }

            return FallBack(caller, estimatedTokens, estimatedCost, uncertainOperation: null);
        }

        var started = _timeProvider.GetTimestamp();
        var operation = NextOperationId();
        var carried = TakePending(keyId);
        try
        {
            var args = new RedisValue[10 + (carried?.Width ?? 2)];
            args[0] = Limit(caller.RpmLimit);
            args[1] = Limit(caller.TpmLimit);
            args[2] = Limit(caller.MaxParallelRequests);
            args[3] = Limit(caller.DailyBudgetUsd);
            args[4] = Limit(caller.MonthlyBudgetUsd);
            args[5] = estimatedTokens;
            args[6] = estimatedCost.ToString("R", CultureInfo.InvariantCulture);
            args[7] = operation;
            args[8] = _leaseMilliseconds;
            args[9] = _retentionMilliseconds;
            PendingWrites.Write(carried, args, 10);
            var result = (RedisResult[])(await _redis.WaitAsync(RedisScripts.AdmitKeyScript.EvaluateAsync(_redis.Database, [KeyPrefix(keyId)], args), "admit", budget).ConfigureAwait(false))!;
            _redis.Metrics.Waited("admit", caller.StoreWait + _timeProvider.GetElapsedTime(started));
            Acknowledge(keyId, caller, carried, result, 7);
            var reason = (string)result[0]!;
            if (reason == "void")
            {
                // Cannot happen for a fresh operation id; if it ever does, nothing was booked: serve locally.
                return FallBack(caller, estimatedTokens, estimatedCost, uncertainOperation: null);
            }

            var admission = ToAdmission(caller, result, estimatedTokens, estimatedCost, operation);
            if (admission.HoldsConcurrencySlot)
            {
                _leases.GetOrAdd(keyId, static _ => new LeaseSet()).Add(operation);
            }

            return admission;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _redis.Metrics.Waited("admit", caller.StoreWait + _timeProvider.GetElapsedTime(started));
            Requeue(keyId, carried);
            _redis.ReportFailure(ex);
            return FallBack(caller, estimatedTokens, estimatedCost, uncertainOperation: operation);
        }
    }

    // Redis did not answer (in time, or at all). An admission that was sent may have been applied: it
    // is settled by operation id whichever way this goes, so neither a slot nor spend is left behind.
    private KeyAdmission FallBack(CallerIdentity caller, long estimatedTokens, double estimatedCost, string? uncertainOperation)
    {
        var keyId = caller.KeyId!;
        if (_options.FailurePolicy == RedisFailurePolicy.FailClosed)
        {
            Refused(keyId, caller, uncertainOperation);
            return new KeyAdmission
            {
                Allowed = false,
                Rejection = ApiError.Unavailable("The gateway's limit store is unreachable, so keyed requests are refused until it is back.", "limit_store_unavailable", TimeSpan.FromSeconds(1)) with { ShouldRetry = true },
                RejectionReason = "store_unavailable",
            };
        }

        var now = _timeProvider.GetUtcNow();
        var day = Periods.Day(now).ToString(CultureInfo.InvariantCulture);
        var month = Periods.Month(now).ToString(CultureInfo.InvariantCulture);
        var budgeted = caller.DailyBudgetUsd is not null || caller.MonthlyBudgetUsd is not null;
        var books = budgeted ? _books.GetOrAdd(keyId, static _ => new KeyBooks()) : null;

        // Budgets first, against the spend Redis last reported plus what this replica spent since.
        if (books?.TryReserve(caller, day, month, estimatedCost, _failOpenShare) is { } spent)
        {
            Refused(keyId, caller, uncertainOperation);
            var daily = spent == "budget_daily";
            return new KeyAdmission
            {
                Allowed = false,
                Rejection = Budget(daily ? "daily" : "monthly", (daily ? caller.DailyBudgetUsd : caller.MonthlyBudgetUsd) ?? 0),
                RejectionReason = spent,
                Local = true,
            };
        }

        var local = _local.Admit(caller, estimatedTokens, estimatedCost, enforceBudgets: false);
        if (!local.Allowed)
        {
            books?.Add(day, month, -estimatedCost);
            Refused(keyId, caller, uncertainOperation);
        }
        else if (uncertainOperation is not null && caller.MaxParallelRequests is not null)
        {
            // If the admission did reach Redis, its slot stands for this running request: keep it alive.
            _leases.GetOrAdd(keyId, static _ => new LeaseSet()).Add(uncertainOperation);
        }

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
            LeaseId = uncertainOperation,
            Day = day,
            Month = month,
            Local = true,
            Uncertain = uncertainOperation is not null,
        };
    }

    // A refused request whose admission may have reached Redis: undo it there, if it did.
    private void Refused(string keyId, CallerIdentity caller, string? uncertainOperation)
    {
        if (uncertainOperation is not null)
        {
            Enqueue(keyId, new SettleRecord(uncertainOperation, SettleMode.RefusedUncertain, 0, 0, LimitFlags.Of(caller)));
        }
    }

    public async ValueTask SettleAsync(CallerIdentity caller, KeyAdmission admission, long actualTokens, double actualCost)
    {
        if (!admission.Allowed || caller.KeyId is null || ReferenceEquals(admission, KeyAdmission.Unlimited))
        {
            return;
        }

        var keyId = caller.KeyId;
        if (admission.Local)
        {
            await _local.SettleAsync(caller, admission, actualTokens, actualCost).ConfigureAwait(false);
            var budgeted = caller.DailyBudgetUsd is not null || caller.MonthlyBudgetUsd is not null;
            if (budgeted)
            {
                _books.GetOrAdd(keyId, static _ => new KeyBooks()).Add(admission.Day!, admission.Month!, actualCost - admission.ReservedCost);
            }

            if (admission.Uncertain)
            {
                _leases.GetValueOrDefault(keyId)?.Remove(admission.LeaseId!);
                Enqueue(keyId, new SettleRecord(admission.LeaseId!, SettleMode.ServedUncertain, actualTokens, actualCost, LimitFlags.Of(caller),
                    budgeted ? actualCost : 0, admission.Day, admission.Month));
            }
            else
            {
                Accumulate(keyId, caller, admission.WindowSecond, actualTokens, actualCost, admission.Day!, admission.Month!);
            }

            return;
        }

        if (admission.HoldsConcurrencySlot)
        {
            _leases.GetValueOrDefault(keyId)?.Remove(admission.LeaseId!);
        }

        // Usually not sent now: the key's next admission from this replica carries it (its script
        // applies it before deciding), or the timer sends it within SettleDelay if the key goes quiet;
        // while Redis is unreachable it waits, and is sent when Redis returns. Near the concurrency limit
        // the slot is released before the request is done, so no replica refuses a request for a slot
        // that is already free (a sequential client behind a round-robin balancer sends its next request
        // the moment it has this answer).
        Enqueue(keyId, new SettleRecord(admission.LeaseId!, SettleMode.Confirmed, actualTokens, actualCost, LimitFlags.Of(caller)));
        if (admission.NearConcurrencyLimit && _redis.IsAvailable)
        {
            try
            {
                await SendPendingAsync(keyId).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // Put back and reported: the timer or Redis's return sends it.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _settleTimer.DisposeAsync().ConfigureAwait(false);
        await _renewTimer.DisposeAsync().ConfigureAwait(false);
        if (!_pending.IsEmpty && _redis.IsAvailable)
        {
            await FlushPendingAsync().ConfigureAwait(false);
        }
    }

    private string NextOperationId() => string.Create(32, (_operationPrefix, (ulong)Interlocked.Increment(ref _operationCounter)), static (span, parts) =>
    {
        parts.Item1.TryFormat(span, out _, "x16");
        parts.Item2.TryFormat(span[16..], out _, "x16");
    });

    private void Enqueue(string keyId, SettleRecord record)
    {
        while (true)
        {
            var pending = _pending.GetOrAdd(keyId, static _ => new PendingWrites());
            lock (pending)
            {
                // Taken between the lookup and the lock by an admission or the timer: start a new one.
                if (!pending.Taken)
                {
                    pending.Records.Add(record);
                    return;
                }
            }
        }
    }

    // A request served locally during an outage: into the key's outage books, written when Redis returns.
    private void Accumulate(string keyId, CallerIdentity caller, long second, long tokens, double cost, string day, string month)
    {
        while (true)
        {
            var pending = _pending.GetOrAdd(keyId, static _ => new PendingWrites());
            lock (pending)
            {
                if (!pending.Taken)
                {
                    var batch = pending.Accumulating();
                    batch.Flags = LimitFlags.Of(caller);
                    batch.Add(second, tokens, cost, day, month);
                    return;
                }
            }
        }
    }

    private PendingWrites? TakePending(string keyId)
    {
        if (!_pending.TryRemove(keyId, out var pending))
        {
            return null;
        }

        lock (pending)
        {
            pending.Taken = true;
            foreach (var batch in pending.Batches)
            {
                if (batch.Id is null)
                {
                    batch.Seal(NextOperationId(), _timeProvider.GetUtcNow().ToUnixTimeSeconds());
                }
            }

            return pending;
        }
    }

    private void Requeue(string keyId, PendingWrites? taken)
    {
        if (taken is null)
        {
            return;
        }

        while (true)
        {
            var pending = _pending.GetOrAdd(keyId, static _ => new PendingWrites());
            lock (pending)
            {
                if (pending.Taken)
                {
                    continue;
                }

                pending.Records.AddRange(taken.Records);

                // Sealed batches go before one that is still accumulating.
                pending.Batches.InsertRange(0, taken.Batches);
                return;
            }
        }
    }

    // Redis has applied what the call carried: release the local spend it covered and take the key's
    // spend as Redis now reports it (result[at..at+3] = day, month, day spend, month spend).
    private void Acknowledge(string keyId, CallerIdentity caller, PendingWrites? carried, RedisResult[] result, int at)
    {
        var budgeted = caller.DailyBudgetUsd is not null || caller.MonthlyBudgetUsd is not null;
        if (!budgeted && carried is null)
        {
            return;
        }

        var books = budgeted ? _books.GetOrAdd(keyId, static _ => new KeyBooks()) : _books.GetValueOrDefault(keyId);
        if (carried is not null)
        {
            long uncertain = 0;
            long outage = 0;
            foreach (var record in carried.Records)
            {
                if (record.Mode != SettleMode.Confirmed)
                {
                    uncertain++;
                }

                if (record.LocalCost != 0)
                {
                    books?.Confirmed(record.Day!, record.Month!, record.LocalCost);
                }
            }

            foreach (var batch in carried.Batches)
            {
                outage += batch.Requests;
                foreach (var (day, cost) in batch.Days)
                {
                    books?.Confirmed(day, null, cost);
                }

                foreach (var (month, cost) in batch.Months)
                {
                    books?.Confirmed(null, month, cost);
                }
            }

            _redis.Metrics.Reconciled("timed_out_admission", uncertain);
            _redis.Metrics.Reconciled("outage_request", outage);
            if (outage > 0)
            {
                LogOutageBooksWritten(_logger, keyId, outage);
            }
        }

        if (books is not null && !result[at + 2].IsNull && ((string?)result[at + 2])?.Length > 0)
        {
            books.Known((string)result[at]!, (string)result[at + 1]!, Parse(result[at + 2]), Parse(result[at + 3]));
        }
    }

    private static double Parse(RedisResult value)
        => (string?)value is { Length: > 0 } text ? double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture) : 0;

    // Sends the key's pending writes and waits (at most CommandTimeout) for Redis to apply them: the
    // client already has its answer, and any replica's next admission for the key then finds the slot free.
    private async Task SendPendingAsync(string keyId)
    {
        var taken = TakePending(keyId);
        if (taken is null)
        {
            return;
        }

        var args = new RedisValue[taken.Width];
        PendingWrites.Write(taken, args, 0);
        try
        {
            var result = (RedisResult[])(await _redis.WaitAsync(RedisScripts.SettleKeyScript.EvaluateAsync(_redis.Database, [KeyPrefix(keyId)], args), "settle").ConfigureAwait(false))!;
            Acknowledge(keyId, CallerIdentity.Anonymous, taken, result, 0);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Requeue(keyId, taken);
            _redis.ReportFailure(ex);
            throw;
        }
    }

    private void FlushOnTimer()
    {
        if (!_pending.IsEmpty && _redis.IsAvailable)
        {
            _ = FlushPendingAsync();
        }
    }

    private async Task FlushPendingAsync()
    {
        if (!await _flushing.WaitAsync(0).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            foreach (var keyId in _pending.Keys)
            {
                await SendPendingAsync(keyId).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            // Put back and reported; the next tick, or Redis's return, tries again.
        }
        finally
        {
            _flushing.Release();
        }
    }

    // Keeps the slots of requests this replica is still serving. One script call per key with requests
    // in flight, every LeaseRenewInterval; nothing at all for keys without a concurrency limit.
    private async Task RenewLeasesAsync()
    {
        if (_leases.IsEmpty || !_redis.IsAvailable || Interlocked.Exchange(ref _renewing, 1) == 1)
        {
            return;
        }

        try
        {
            var calls = new List<Task<RedisResult>>();
            foreach (var (keyId, leases) in _leases)
            {
                var ids = leases.Snapshot();
                for (var start = 0; start < ids.Length; start += MaxIdsPerRenewal)
                {
                    var count = Math.Min(MaxIdsPerRenewal, ids.Length - start);
                    var args = new RedisValue[2 + count];
                    args[0] = _leaseMilliseconds;
                    args[1] = _retentionMilliseconds;
                    for (var i = 0; i < count; i++)
                    {
                        args[2 + i] = ids[start + i];
                    }

                    calls.Add(RedisScripts.RenewLeasesScript.EvaluateAsync(_redis.Database, [KeyPrefix(keyId)], args));
                }
            }

            // All at once (pipelined), waited on together: one slow key never holds up the others' renewals.
            await _redis.WaitAsync(Task.WhenAll(calls), "renew").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _redis.ReportFailure(ex);
        }
        catch (ObjectDisposedException)
        {
            // Shutting down: the connection went first.
        }
        finally
        {
            Volatile.Write(ref _renewing, 0);
        }
    }

    public async ValueTask<DeploymentAdmission> TryAcquireDeploymentAsync(Deployment deployment, long estimatedTokens, CancellationToken cancellationToken)
    {
        if (deployment.RequestLimit is null && deployment.TokenLimit is null)
        {
            return DeploymentAdmission.Unlimited;
        }

        if (_redis.IsAvailable)
        {
            try
            {
                var result = (RedisResult[])(await _redis.WaitAsync(RedisScripts.AcquireDeploymentScript.EvaluateAsync(
                    _redis.Database,
                    [DeploymentPrefix(deployment.Name)],
                    [Limit(deployment.RequestLimit?.Count), Limit(deployment.TokenLimit?.Count), estimatedTokens, Window(deployment.RequestLimit), Window(deployment.TokenLimit)]), "deployment").ConfigureAwait(false))!;
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
            // Fire and forget: a provider window's correction is advisory, and never waited on.
            await _redis.Database.ScriptEvaluateAsync(RedisScripts.SettleDeployment, [DeploymentPrefix(deployment.Name)],
                [admission.WindowSecond, actualTokens - admission.ReservedTokens, Window(deployment.TokenLimit)], CommandFlags.FireAndForget).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _redis.ReportFailure(ex);
        }
    }

    private static KeyAdmission ToAdmission(CallerIdentity caller, RedisResult[] result, long estimatedTokens, double estimatedCost, string operation)
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
            LeaseId = operation,
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

    private static RedisValue Window(WindowLimit? limit) => limit?.WindowSeconds ?? SlidingWindow.Seconds;

    private static RedisValue Limit(double? limit) => limit is { } value ? value.ToString("R", CultureInfo.InvariantCulture) : "-1";

    [LoggerMessage(EventId = 4201, Level = LogLevel.Information, Message = "Wrote {Requests} requests that key {KeyId} was served while Redis was unreachable into its windows and budgets")]
    private static partial void LogOutageBooksWritten(ILogger logger, string keyId, long requests);
}
