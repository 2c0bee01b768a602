using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Routing;

namespace ModelGateway.Resilience;

/// <summary>
/// Which of a request's ranked candidates have been tried, skipped or failed, shared by the retry
/// loop and by concurrent hedged attempts. A fresh candidate is always preferred to trying one
/// again; a deployment is tried again only after a transient failure and a backoff.
/// </summary>
internal sealed class AttemptState(GatewayRequest request, FailoverExecutor executor)
{
    private const byte Untried = 0;
    private const byte Tried = 1;
    private const byte Skipped = 2;
    private const byte Failed = 3;

    private readonly Lock _gate = new();
    private readonly Deployment[] _ranked = request.Decision!.Ranked;
    private readonly byte[] _status = new byte[request.Decision!.Ranked.Length];
    private readonly bool[] _transient = new bool[request.Decision!.Ranked.Length];
    private long _contextLimitFailed = long.MaxValue;
    private Exclusion _lastSkip;
    private TimeSpan _shortestWait = TimeSpan.MaxValue;
    private int _rateLimitedAttempts;
    private int _attempts;
    private int _skips;

    public GatewayRequest Request { get; } = request;

    public FailoverExecutor Executor { get; } = executor;

    public bool BudgetExhausted { get; set; }

    /// <summary>Set when the retry budget is spent: only candidates known to be healthy may still be tried.</summary>
    public bool OnlyKnownHealthy { get; set; }

    private int _failoverPending;

    /// <summary>Marks that the next attempt replaces a failed one (a failover, not a hedge).</summary>
    public void FailoverPending() => Volatile.Write(ref _failoverPending, 1);

    public bool TakeFailoverPending() => Interlocked.Exchange(ref _failoverPending, 0) == 1;

    /// <summary>Takes the best-ranked candidate not tried yet, or one worth trying again.</summary>
    public bool TryTakeCandidate(out Deployment deployment)
    {
        lock (_gate)
        {
            var healthyOnly = OnlyKnownHealthy;
            for (var i = 0; i < _ranked.Length; i++)
            {
                if (_status[i] == Untried && Available(_ranked[i]) && (!healthyOnly || _ranked[i].State.Circuit.IsKnownHealthy))
                {
                    _status[i] = Tried;
                    deployment = _ranked[i];
                    return true;
                }
            }

            for (var i = 0; i < _ranked.Length && !healthyOnly; i++)
            {
                if (_status[i] == Failed && _transient[i] && Available(_ranked[i]))
                {
                    _status[i] = Tried;
                    deployment = _ranked[i];
                    return true;
                }
            }
        }

        deployment = null!;
        return false;
    }

    /// <summary>Whether another attempt could run after <paramref name="afterFailure"/> (or now, for a hedge).</summary>
    public bool HasCandidate(AttemptOutcome? afterFailure)
    {
        lock (_gate)
        {
            if (afterFailure is { Failure: AttemptFailure.ContextLength, Deployment.ContextWindow: { } window })
            {
                _contextLimitFailed = Math.Min(_contextLimitFailed, window);
            }

            for (var i = 0; i < _ranked.Length; i++)
            {
                var candidate = _ranked[i];
                if ((_status[i] == Untried || (afterFailure is not null && _status[i] == Failed && _transient[i])) && Available(candidate))
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>Whether the candidate the next attempt would take is untried and known to be healthy (no retry budget needed).</summary>
    public bool NextCandidateIsKnownHealthy()
    {
        lock (_gate)
        {
            for (var i = 0; i < _ranked.Length; i++)
            {
                if (_status[i] == Untried && Available(_ranked[i]))
                {
                    return _ranked[i].State.Circuit.IsKnownHealthy;
                }
            }

            return false;
        }
    }

    /// <summary>Whether any untried candidate is known to be healthy.</summary>
    public bool HasKnownHealthyCandidate()
    {
        lock (_gate)
        {
            for (var i = 0; i < _ranked.Length; i++)
            {
                if (_status[i] == Untried && Available(_ranked[i]) && _ranked[i].State.Circuit.IsKnownHealthy)
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>The failed <paramref name="deployment"/> is being tried again within its own turn (its <c>retries</c>).</summary>
    public void Retrying(Deployment deployment)
    {
        lock (_gate)
        {
            var index = Array.IndexOf(_ranked, deployment);
            if (index >= 0)
            {
                _status[index] = Tried;
            }
        }
    }

    /// <summary>True when an untried candidate remains, so the next attempt needs no backoff.</summary>
    public bool HasFreshCandidate()
    {
        lock (_gate)
        {
            for (var i = 0; i < _ranked.Length; i++)
            {
                if (_status[i] == Untried && Available(_ranked[i]))
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>A deployment that supports prefill and has not failed this request, for continuing a broken stream.</summary>
    public bool TryTakeContinuationCandidate(Deployment broken, out Deployment deployment)
    {
        lock (_gate)
        {
            for (var pass = 0; pass < 2; pass++)
            {
                for (var i = 0; i < _ranked.Length; i++)
                {
                    var candidate = _ranked[i];
                    var fresh = pass == 0 ? _status[i] == Untried : _status[i] == Tried;
                    if (fresh && !ReferenceEquals(candidate, broken) && candidate.Has(Capabilities.Prefill) && Available(candidate))
                    {
                        _status[i] = Failed;
                        deployment = candidate;
                        return true;
                    }
                }
            }
        }

        deployment = null!;
        return false;
    }

    public void Skip(Deployment deployment, Exclusion reason, TimeSpan wait)
    {
        lock (_gate)
        {
            var index = Array.IndexOf(_ranked, deployment);
            if (index >= 0)
            {
                _status[index] = Skipped;
            }

            _skips++;
            _lastSkip = reason;
            if (wait > TimeSpan.Zero && wait < _shortestWait)
            {
                _shortestWait = wait;
            }
        }
    }

    public void Attempted(Deployment deployment, AttemptOutcome outcome)
    {
        lock (_gate)
        {
            _attempts++;
            var index = Array.IndexOf(_ranked, deployment);
            if (index >= 0 && !outcome.IsSuccess)
            {
                _status[index] = Failed;
                _transient[index] = outcome.IsTransient;
            }

            if (outcome.Failure == AttemptFailure.RateLimited)
            {
                _rateLimitedAttempts++;
                if (outcome.RetryAfter is { } wait && wait < _shortestWait)
                {
                    _shortestWait = wait;
                }
            }

            if (outcome is { Failure: AttemptFailure.ContextLength, Deployment.ContextWindow: { } window })
            {
                _contextLimitFailed = Math.Min(_contextLimitFailed, window);
            }
        }
    }

    /// <summary>The outcome when the candidates ran out before any attempt could start.</summary>
    public AttemptOutcome NoCandidateLeft()
    {
        lock (_gate)
        {
            var wait = _shortestWait == TimeSpan.MaxValue ? TimeSpan.FromSeconds(1) : _shortestWait;
            var error = _lastSkip is Exclusion.RateLimited or Exclusion.CoolingDown
                ? Wire.ApiError.RateLimited("Every deployment of this model is at its rate limit.", wait)
                : Wire.ApiError.Unavailable("No deployment of this model is available right now.", retryAfter: wait);
            return AttemptOutcome.Failed(null, AttemptFailure.Unavailable, error, "no candidate left");
        }
    }

    /// <summary>
    /// The error the client gets when every attempt failed: the last attempt's own error when it is
    /// the client's to fix, 429 when every provider asked us to wait, else 502/503/504 with a count.
    /// </summary>
    public AttemptOutcome FinalFailure(AttemptOutcome last)
    {
        if (last.Failure is AttemptFailure.ClientError or AttemptFailure.ContentFilter or AttemptFailure.ContextLength)
        {
            return last;
        }

        lock (_gate)
        {
            var wait = _shortestWait == TimeSpan.MaxValue ? TimeSpan.FromSeconds(1) : _shortestWait;
            if (_attempts == 0)
            {
                return last.Error is not null && last.Failure == AttemptFailure.Unavailable ? last : NoCandidateLeft();
            }

            if (_rateLimitedAttempts == _attempts || (last.Failure == AttemptFailure.RateLimited && _rateLimitedAttempts > 0 && _lastSkip is Exclusion.RateLimited or Exclusion.CoolingDown))
            {
                return AttemptOutcome.Failed(last.Deployment, AttemptFailure.RateLimited,
                    Wire.ApiError.RateLimited("Every deployment of this model is rate limited by its provider.", wait), last.Detail ?? "rate limited", 429, wait);
            }

            var summary = Request.Attempts.Describe();
            var attempts = _attempts == 1 ? "1 attempt" : $"all {_attempts} attempts";
            var budget = BudgetExhausted ? " The gateway's retry budget is spent, so no more deployments were tried." : string.Empty;
            var message = $"The model could not be reached: {attempts} failed ({summary}).{budget}";
            var error = last.Failure == AttemptFailure.Timeout
                ? Wire.ApiError.GatewayTimeout(message)
                : last.UpstreamStatus == 503 ? Wire.ApiError.Unavailable(message, "upstream_unavailable") with { ShouldRetry = false }
                : Wire.ApiError.BadGateway(message, last.Failure == AttemptFailure.Misconfigured ? "upstream_misconfigured" : last.Failure == AttemptFailure.BadResponse ? "bad_upstream_response" : "upstream_error");
            return AttemptOutcome.Failed(last.Deployment, last.Failure, error, last.Detail ?? "failed", last.UpstreamStatus);
        }
    }

    private bool Available(Deployment deployment)
    {
        if (deployment.ContextWindow is { } window && window <= _contextLimitFailed && _contextLimitFailed != long.MaxValue)
        {
            return false;
        }

        var state = deployment.State;
        return state.Circuit.Status != CircuitStatus.Open && state.CoolingRemaining == TimeSpan.Zero;
    }
}
