using ModelGateway.Configuration;
using Polly;
using Polly.Timeout;

namespace ModelGateway.Resilience;

/// <summary>Where a deployment's circuit stands, as routing sees it.</summary>
internal enum CircuitStatus
{
    Closed,

    /// <summary>The break has elapsed: one request may test recovery.</summary>
    HalfOpen,

    Open,
}

/// <summary>
/// A deployment's circuit breaker, and the per-attempt timeout it runs attempts in. Two rules open it:
/// <c>consecutiveFailures</c> failed calls in a row, whatever came before them, or a failure ratio over a
/// sliding window. While it is open routing skips the deployment. Recovery is tested by the health prober
/// (a cheap request every probe interval) or, once the break is over, by one real request (half-open). A
/// failed test opens the circuit again for twice as long, up to <c>maxBreakDuration</c>; a success closes
/// it, and the next outage starts with a short break again.
/// </summary>
/// <remarks>
/// Polly v8's breaker only knows a failure ratio (a "consecutive" rule built from it at 100% never fires
/// while the window still holds earlier successes), cannot back its break off, and cannot be closed by a
/// probe that ran outside it; so the state machine is ours and only the timeout is a Polly strategy.
/// Routing reads the state without a lock; changes happen under one.
/// </remarks>
internal sealed partial class DeploymentCircuit
{
    /// <summary>The timeout of the attempt about to run, set by the failover loop for each attempt.</summary>
    public static readonly ResiliencePropertyKey<TimeSpan> AttemptTimeout = new("modelgateway.attempt-timeout");

    private const int Buckets = 10;

    private readonly Lock _gate = new();
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly string _deployment;
    private readonly Action<string, CircuitStatus>? _onChange;
    private readonly long _bucketTicks;
    private readonly long[] _bucketSlot = new long[Buckets];
    private readonly int[] _bucketCalls = new int[Buckets];
    private readonly int[] _bucketFailures = new int[Buckets];

    // Timestamp until which the circuit is open; 0 while closed. Past it the circuit is half-open.
    private long _openUntil;
    private int _consecutiveFailures;
    private int _failedTests;
    private bool _testRunning;
    private bool _everSucceeded;
    private long _nextProbeAt;

    public DeploymentCircuit(string deployment, CircuitBreakerSettings settings, TimeProvider timeProvider, ILogger logger, Action<string, CircuitStatus>? onChange = null)
    {
        _deployment = deployment;
        _timeProvider = timeProvider;
        _logger = logger;
        _onChange = onChange;
        Settings = settings;
        _bucketTicks = Math.Max(1, (long)(settings.SamplingDuration.TotalSeconds * timeProvider.TimestampFrequency / Buckets));
        Pipeline = new ResiliencePipelineBuilder<AttemptOutcome> { Name = deployment, TimeProvider = timeProvider }
            .AddTimeout(new TimeoutStrategyOptions
            {
                Name = "attempt-timeout",
                TimeoutGenerator = static args => new ValueTask<TimeSpan>(args.Context.Properties.GetValue(AttemptTimeout, Timeout.InfiniteTimeSpan)),
            })
            .Build();
    }

    public CircuitBreakerSettings Settings { get; }

    /// <summary>The per-attempt timeout (<see cref="AttemptTimeout"/>).</summary>
    public ResiliencePipeline<AttemptOutcome> Pipeline { get; }

    public CircuitStatus Status => StatusAt(_timeProvider.GetTimestamp());

    /// <summary>How long the circuit stays open, or zero.</summary>
    public TimeSpan OpenRemaining => OpenRemainingAt(_timeProvider.GetTimestamp());

    /// <summary>Failures in a row so far (reset by any success).</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _consecutiveFailures);

    /// <summary>
    /// Closed, its last call succeeded and it has succeeded at least once: a failover to it is not a
    /// retry storm in the making, so it does not draw on the retry budget.
    /// </summary>
    public bool IsKnownHealthy => Volatile.Read(ref _openUntil) == 0 && Volatile.Read(ref _consecutiveFailures) == 0 && Volatile.Read(ref _everSucceeded);

    /// <summary>When the health prober should next test the open circuit (<see cref="TimeProvider.GetTimestamp"/>), 0 when none is planned.</summary>
    public long NextProbeAt => Volatile.Read(ref _nextProbeAt);

    /// <summary>The status at <paramref name="now"/> (<see cref="TimeProvider.GetTimestamp"/>), so a decision reads the clock once.</summary>
    public CircuitStatus StatusAt(long now)
    {
        var until = Volatile.Read(ref _openUntil);
        if (until == 0)
        {
            return CircuitStatus.Closed;
        }

        return now < until ? CircuitStatus.Open : CircuitStatus.HalfOpen;
    }

    public TimeSpan OpenRemainingAt(long now)
    {
        var until = Volatile.Read(ref _openUntil);
        return until > now ? _timeProvider.GetElapsedTime(now, until) : TimeSpan.Zero;
    }

    /// <summary>
    /// Asks to run an attempt. Always granted while closed; refused while open; granted to exactly one
    /// attempt at a time once the break is over, which then tests recovery (<paramref name="isTest"/>).
    /// </summary>
    public bool TryAcquire(out bool isTest)
    {
        isTest = false;
        if (Volatile.Read(ref _openUntil) == 0)
        {
            return true;
        }

        lock (_gate)
        {
            if (_openUntil == 0)
            {
                return true;
            }

            if (_timeProvider.GetTimestamp() < _openUntil || _testRunning)
            {
                return false;
            }

            _testRunning = true;
            isTest = true;
        }

        LogHalfOpened(_logger, _deployment);
        _onChange?.Invoke(_deployment, CircuitStatus.HalfOpen);
        return true;
    }

    /// <summary>Gives back a test slot whose attempt ended without a verdict (cancelled).</summary>
    public void Release(bool isTest)
    {
        if (isTest)
        {
            lock (_gate)
            {
                _testRunning = false;
            }
        }
    }

    /// <summary>Records an attempt's verdict: <paramref name="failed"/> when it says the deployment is unhealthy.</summary>
    public void Report(bool failed, bool isTest)
    {
        var now = _timeProvider.GetTimestamp();
        CircuitStatus? change = null;
        string? reason = null;
        TimeSpan breakFor = default;
        lock (_gate)
        {
            if (isTest)
            {
                _testRunning = false;
            }

            Count(now, failed);
            if (!failed)
            {
                _consecutiveFailures = 0;
                _everSucceeded = true;

                // An attempt that started before the circuit opened says little about now: only one
                // that ran after the break (a test, or a late one in the half-open state) closes it.
                if (_openUntil != 0 && (isTest || now >= _openUntil))
                {
                    Close();
                    change = CircuitStatus.Closed;
                }
            }
            else
            {
                _consecutiveFailures++;
                if (_openUntil == 0)
                {
                    reason = OpeningRule(now);
                    if (reason is not null)
                    {
                        breakFor = Open(now);
                        change = CircuitStatus.Open;
                    }
                }
                else if (isTest)
                {
                    _failedTests++;
                    breakFor = Open(now);
                    change = CircuitStatus.Open;
                    reason = "recovery test failed";
                }
            }
        }

        Notify(change, reason, breakFor);
    }

    /// <summary>Counts a failure that happened outside an attempt (a stream that broke mid-way).</summary>
    public void ReportFailure() => Report(failed: true, isTest: false);

    /// <summary>Plans the next health probe <paramref name="delay"/> from now.</summary>
    public void ScheduleProbe(TimeSpan delay)
    {
        var at = _timeProvider.GetTimestamp() + (long)(delay.TotalSeconds * _timeProvider.TimestampFrequency);
        lock (_gate)
        {
            if (_openUntil != 0)
            {
                _nextProbeAt = at;
            }
        }
    }

    /// <summary>
    /// Records a health probe's verdict: a healthy answer closes the circuit at once (break or not), an
    /// unhealthy one keeps it open and backs the break off.
    /// </summary>
    public void ProbeCompleted(bool healthy)
    {
        var now = _timeProvider.GetTimestamp();
        CircuitStatus? change = null;
        TimeSpan breakFor = default;
        lock (_gate)
        {
            if (_openUntil == 0)
            {
                return;
            }

            if (healthy)
            {
                Close();
                _everSucceeded = true;
                change = CircuitStatus.Closed;
            }
            else
            {
                _failedTests++;
                breakFor = Open(now);
                change = CircuitStatus.Open;
            }
        }

        if (change == CircuitStatus.Open)
        {
            LogStillDown(_logger, _deployment, breakFor.TotalSeconds);
            _onChange?.Invoke(_deployment, CircuitStatus.Open);
        }
        else
        {
            LogProbeClosed(_logger, _deployment);
            _onChange?.Invoke(_deployment, CircuitStatus.Closed);
        }
    }

    // Which rule opens the circuit now, or null.
    private string? OpeningRule(long now)
    {
        var consecutive = Settings.ConsecutiveFailures;
        if (consecutive >= 2 && _consecutiveFailures >= consecutive)
        {
            return "consecutive-failures";
        }

        var (calls, failures) = Window(now);
        return calls >= Settings.MinimumThroughput && failures >= Settings.FailureRatio * calls ? "failure-ratio" : null;
    }

    private TimeSpan Open(long now)
    {
        // The break doubles with each failed test since the circuit last closed, up to the longest.
        var breakFor = Settings.BreakDuration;
        for (var i = 0; i < _failedTests && breakFor < Settings.MaxBreakDuration; i++)
        {
            breakFor *= 2;
        }

        if (breakFor > Settings.MaxBreakDuration)
        {
            breakFor = Settings.MaxBreakDuration;
        }

        Volatile.Write(ref _openUntil, now + (long)(breakFor.TotalSeconds * _timeProvider.TimestampFrequency));
        return breakFor;
    }

    private void Close()
    {
        Volatile.Write(ref _openUntil, 0);
        _failedTests = 0;
        _consecutiveFailures = 0;
        _testRunning = false;
        _nextProbeAt = 0;

        // A closed circuit starts counting afresh, as Polly's does: the outage's failures are history.
        Array.Clear(_bucketCalls);
        Array.Clear(_bucketFailures);
    }

    private void Count(long now, bool failed)
    {
        var slot = now / _bucketTicks;
        var index = (int)(slot % Buckets);
        if (_bucketSlot[index] != slot)
        {
            _bucketSlot[index] = slot;
            _bucketCalls[index] = 0;
            _bucketFailures[index] = 0;
        }

        _bucketCalls[index]++;
        if (failed)
        {
            _bucketFailures[index]++;
        }
    }

    private (int Calls, int Failures) Window(long now)
    {
        var slot = now / _bucketTicks;
        int calls = 0, failures = 0;
        for (var i = 0; i < Buckets; i++)
        {
            if (slot - _bucketSlot[i] < Buckets)
            {
                calls += _bucketCalls[i];
                failures += _bucketFailures[i];
            }
        }

        return (calls, failures);
    }

    private void Notify(CircuitStatus? change, string? reason, TimeSpan breakFor)
    {
        switch (change)
        {
            case CircuitStatus.Open:
                LogOpened(_logger, _deployment, reason!, breakFor.TotalSeconds);
                _onChange?.Invoke(_deployment, CircuitStatus.Open);
                break;
            case CircuitStatus.Closed:
                LogClosed(_logger, _deployment);
                _onChange?.Invoke(_deployment, CircuitStatus.Closed);
                break;
        }
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Circuit of deployment {Deployment} opened ({Breaker}) for {BreakSeconds}s")]
    private static partial void LogOpened(ILogger logger, string deployment, string breaker, double breakSeconds);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Circuit of deployment {Deployment} is half-open: one request will test recovery")]
    private static partial void LogHalfOpened(ILogger logger, string deployment);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Circuit of deployment {Deployment} closed: it is serving again")]
    private static partial void LogClosed(ILogger logger, string deployment);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Circuit of deployment {Deployment} closed: a health probe found it serving again")]
    private static partial void LogProbeClosed(ILogger logger, string deployment);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Information, Message = "Deployment {Deployment} is still down after a health probe: its circuit stays open for {BreakSeconds}s")]
    private static partial void LogStillDown(ILogger logger, string deployment, double breakSeconds);
}
