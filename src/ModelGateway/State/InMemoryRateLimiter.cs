using System.Collections.Concurrent;
using ModelGateway.Configuration;
using ModelGateway.Wire;

namespace ModelGateway.State;

/// <summary>
/// Limits held in this process: exact for a single replica, and the fallback a Redis-backed
/// gateway uses while Redis is unreachable (with limits divided by the expected replica count).
/// </summary>
internal sealed class InMemoryRateLimiter(TimeProvider timeProvider, double limitScale = 1.0) : IRateLimiter
{
    private readonly ConcurrentDictionary<string, KeyCounters> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DeploymentCounters> _deployments = new(StringComparer.Ordinal);

    public ValueTask<KeyAdmission> AdmitAsync(CallerIdentity caller, string requestId, long estimatedTokens, double estimatedCost, CancellationToken cancellationToken)
        => new(Admit(caller, estimatedTokens, estimatedCost, enforceBudgets: true));

    /// <summary>
    /// Admits against this process's counters. Without <paramref name="enforceBudgets"/> budgets are
    /// left to the caller: the Redis limiter's fail-open path checks them against the spend it last
    /// read from Redis, which these counters never see.
    /// </summary>
    internal KeyAdmission Admit(CallerIdentity caller, long estimatedTokens, double estimatedCost, bool enforceBudgets)
    {
        if (!caller.HasLimits || caller.KeyId is null)
        {
            return KeyAdmission.Unlimited;
        }

        var counters = _keys.GetOrAdd(caller.KeyId, static _ => new KeyCounters());
        var now = timeProvider.GetUtcNow();
        var second = now.ToUnixTimeSeconds();
        var rpm = Scale(caller.RpmLimit);
        var tpm = Scale(caller.TpmLimit);
        var parallel = Scale(caller.MaxParallelRequests);
        lock (counters)
        {
            var requests = counters.Requests.Sum(second);
            var tokens = counters.Tokens.Sum(second);
            var day = Periods.Day(now);
            var month = Periods.Month(now);
            counters.Roll(day, month);

            ApiError? rejection = null;
            string? reason = null;
            if (enforceBudgets && caller.DailyBudgetUsd is { } daily && counters.SpentDay >= daily)
            {
                (rejection, reason) = (Budget("daily", daily), "budget_daily");
            }
            else if (enforceBudgets && caller.MonthlyBudgetUsd is { } monthly && counters.SpentMonth >= monthly)
            {
                (rejection, reason) = (Budget("monthly", monthly), "budget_monthly");
            }
            else if (parallel is { } maxParallel && counters.InFlight >= maxParallel)
            {
                (rejection, reason) = (ApiError.RateLimited($"Too many concurrent requests for this key (limit {maxParallel}).", TimeSpan.FromSeconds(1)), "concurrency");
            }
            else if (rpm is { } requestLimit && requests + 1 > requestLimit)
            {
                (rejection, reason) = (ApiError.RateLimited($"Rate limit reached for requests: limit {requestLimit} per minute.", counters.Requests.UntilOldestExpires(second)), "requests");
            }
            else if (tpm is { } tokenLimit && tokens + estimatedTokens > tokenLimit)
            {
                (rejection, reason) = (ApiError.RateLimited($"Rate limit reached for tokens: limit {tokenLimit} per minute, this request needs about {estimatedTokens}.", counters.Tokens.UntilOldestExpires(second), "tokens"), "tokens");
            }

            if (rejection is null)
            {
                counters.Requests.Add(second, 1);
                counters.Tokens.Add(second, estimatedTokens);
                counters.SpentDay += estimatedCost;
                counters.SpentMonth += estimatedCost;
                counters.InFlight++;
                requests++;
                tokens += estimatedTokens;
            }

            return new KeyAdmission
            {
                Allowed = rejection is null,
                Rejection = rejection,
                RejectionReason = reason,
                RequestLimit = rpm,
                RequestsRemaining = Math.Max(0, (rpm ?? 0) - requests),
                RequestsReset = counters.Requests.UntilOldestExpires(second),
                TokenLimit = tpm,
                TokensRemaining = Math.Max(0, (tpm ?? 0) - tokens),
                TokensReset = counters.Tokens.UntilOldestExpires(second),
                ReservedTokens = rejection is null ? estimatedTokens : 0,
                ReservedCost = rejection is null ? estimatedCost : 0,
                WindowSecond = second,
                HoldsConcurrencySlot = rejection is null,
            };
        }
    }

    public ValueTask SettleAsync(CallerIdentity caller, KeyAdmission admission, long actualTokens, double actualCost)
    {
        if (caller.KeyId is null || !admission.Allowed || !_keys.TryGetValue(caller.KeyId, out var counters))
        {
            return default;
        }

        var now = timeProvider.GetUtcNow();
        lock (counters)
        {
            counters.Roll(Periods.Day(now), Periods.Month(now));
            counters.Tokens.Adjust(admission.WindowSecond, now.ToUnixTimeSeconds(), actualTokens - admission.ReservedTokens);
            counters.SpentDay += actualCost - admission.ReservedCost;
            counters.SpentMonth += actualCost - admission.ReservedCost;
            if (admission.HoldsConcurrencySlot)
            {
                counters.InFlight = Math.Max(0, counters.InFlight - 1);
            }
        }

        return default;
    }

    public ValueTask<DeploymentAdmission> TryAcquireDeploymentAsync(Deployment deployment, long estimatedTokens, CancellationToken cancellationToken)
    {
        if (deployment.RequestLimit is null && deployment.TokenLimit is null)
        {
            return new ValueTask<DeploymentAdmission>(DeploymentAdmission.Unlimited);
        }

        var counters = Counters(deployment);
        var second = timeProvider.GetUtcNow().ToUnixTimeSeconds();
        var rpm = Scale(deployment.RequestLimit?.Count);
        var tpm = Scale(deployment.TokenLimit?.Count);
        lock (counters)
        {
            var requests = counters.Requests.Sum(second);
            var tokens = counters.Tokens.Sum(second);
            if ((rpm is { } requestLimit && requests + 1 > requestLimit) || (tpm is { } tokenLimit && tokens + estimatedTokens > tokenLimit))
            {
                var wait = rpm is { } && requests + 1 > rpm ? counters.Requests.UntilOldestExpires(second) : counters.Tokens.UntilOldestExpires(second);
                deployment.State.MarkLimited(wait);
                return new ValueTask<DeploymentAdmission>(new DeploymentAdmission(false, wait, 0, second));
            }

            counters.Requests.Add(second, 1);
            counters.Tokens.Add(second, estimatedTokens);
            if ((rpm is { } r && requests + 1 >= r) || (tpm is { } t && tokens + estimatedTokens >= t))
            {
                // Spent: routing skips it until the window moves, instead of asking and being refused.
                deployment.State.MarkLimited(rpm is { } && requests + 1 >= rpm ? counters.Requests.UntilOldestExpires(second) : counters.Tokens.UntilOldestExpires(second));
            }

            return new ValueTask<DeploymentAdmission>(new DeploymentAdmission(true, TimeSpan.Zero, estimatedTokens, second));
        }
    }

    public ValueTask SettleDeploymentAsync(Deployment deployment, DeploymentAdmission admission, long actualTokens)
    {
        if (admission.ReservedTokens == 0 || !_deployments.TryGetValue(deployment.Name, out var counters) || counters.Tokens.Length != Window(deployment.TokenLimit))
        {
            return default;
        }

        lock (counters)
        {
            counters.Tokens.Adjust(admission.WindowSecond, timeProvider.GetUtcNow().ToUnixTimeSeconds(), actualTokens - admission.ReservedTokens);
        }

        return default;
    }

    private int? Scale(int? limit) => limit is { } value ? Math.Max(1, (int)(value * limitScale)) : null;

    private long? Scale(long? limit) => limit is { } value ? Math.Max(1, (long)(value * limitScale)) : null;

    private static ApiError Budget(string period, double budget) => new(
        429,
        $"This key has spent its {period} budget of ${budget:0.##}.",
        "insufficient_quota",
        "insufficient_quota") { ShouldRetry = false };

    private sealed class KeyCounters
    {
        public SlidingWindow Requests { get; } = new();
        public SlidingWindow Tokens { get; } = new();
        public int InFlight { get; set; }
        public double SpentDay { get; set; }
        public double SpentMonth { get; set; }
        private int _day;
        private int _month;

        public void Roll(int day, int month)
        {
            if (day != _day)
            {
                _day = day;
                SpentDay = 0;
            }

            if (month != _month)
            {
                _month = month;
                SpentMonth = 0;
            }
        }
    }

    // A reload that changes a window starts its count over: buckets of another length do not carry over.
    private DeploymentCounters Counters(Deployment deployment)
    {
        var (requests, tokens) = (Window(deployment.RequestLimit), Window(deployment.TokenLimit));
        var counters = _deployments.GetOrAdd(deployment.Name, static (_, w) => new DeploymentCounters(w.requests, w.tokens), (requests, tokens));
        if (counters.Requests.Length != requests || counters.Tokens.Length != tokens)
        {
            var fresh = new DeploymentCounters(requests, tokens);
            counters = _deployments.TryUpdate(deployment.Name, fresh, counters) ? fresh : _deployments[deployment.Name];
        }

        return counters;
    }

    private static int Window(WindowLimit? limit) => limit?.WindowSeconds ?? SlidingWindow.Seconds;

    private sealed class DeploymentCounters(int requestsWindow, int tokensWindow)
    {
        public SlidingWindow Requests { get; } = new(requestsWindow);
        public SlidingWindow Tokens { get; } = new(tokensWindow);
    }
}

/// <summary>Calendar periods for budgets and usage, in UTC.</summary>
internal static class Periods
{
    public static int Day(DateTimeOffset now) => (now.Year * 10000) + (now.Month * 100) + now.Day;

    public static int Month(DateTimeOffset now) => (now.Year * 100) + now.Month;
}
