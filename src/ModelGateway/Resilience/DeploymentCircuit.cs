using ModelGateway.Configuration;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace ModelGateway.Resilience;

/// <summary>Where a deployment's circuit stands, as routing sees it.</summary>
internal enum CircuitStatus
{
    Closed,

    /// <summary>The break has elapsed: one probe request may test recovery.</summary>
    HalfOpen,

    Open,
}

/// <summary>
/// A deployment's Polly pipeline: a failure-ratio breaker and a consecutive-failure breaker around a
/// per-attempt timeout. Polly only moves an open circuit to half-open when something executes, so
/// the open-until time is tracked here too: routing keeps skipping the deployment during its break,
/// and offers it for one probe once the break is over.
/// </summary>
internal sealed partial class DeploymentCircuit
{
    /// <summary>The timeout of the attempt about to run, set by the failover loop for each attempt.</summary>
    public static readonly ResiliencePropertyKey<TimeSpan> AttemptTimeout = new("modelgateway.attempt-timeout");

    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly string _deployment;
    private readonly long[] _openUntil = new long[2];

    public DeploymentCircuit(string deployment, CircuitBreakerSettings settings, TimeProvider timeProvider, ILogger logger, Action<string, CircuitStatus>? onChange = null)
    {
        _deployment = deployment;
        _timeProvider = timeProvider;
        _logger = logger;
        Settings = settings;
        var builder = new ResiliencePipelineBuilder<AttemptOutcome> { Name = deployment, TimeProvider = timeProvider };
        builder.AddCircuitBreaker(Breaker(0, "failure-ratio", settings.FailureRatio, settings.MinimumThroughput, settings, onChange));
        if (settings.ConsecutiveFailures >= 2)
        {
            // "Every one of at least N calls in the window failed": Polly's ratio breaker at 100%.
            builder.AddCircuitBreaker(Breaker(1, "consecutive-failures", 1.0, settings.ConsecutiveFailures, settings, onChange));
        }

        builder.AddTimeout(new TimeoutStrategyOptions
        {
            Name = "attempt-timeout",
            TimeoutGenerator = static args => new ValueTask<TimeSpan>(args.Context.Properties.GetValue(AttemptTimeout, Timeout.InfiniteTimeSpan)),
        });
        Pipeline = builder.Build();
    }

    public CircuitBreakerSettings Settings { get; }

    public ResiliencePipeline<AttemptOutcome> Pipeline { get; }

    public CircuitStatus Status => StatusAt(_timeProvider.GetTimestamp());

    /// <summary>How long the circuit stays open, or zero.</summary>
    public TimeSpan OpenRemaining => OpenRemainingAt(_timeProvider.GetTimestamp());

    /// <summary>The status at <paramref name="now"/> (<see cref="TimeProvider.GetTimestamp"/>), so a decision reads the clock once.</summary>
    public CircuitStatus StatusAt(long now)
    {
        var until = Math.Max(Volatile.Read(ref _openUntil[0]), Volatile.Read(ref _openUntil[1]));
        if (until == 0)
        {
            return CircuitStatus.Closed;
        }

        return now < until ? CircuitStatus.Open : CircuitStatus.HalfOpen;
    }

    public TimeSpan OpenRemainingAt(long now)
    {
        var until = Math.Max(Volatile.Read(ref _openUntil[0]), Volatile.Read(ref _openUntil[1]));
        return until > now ? _timeProvider.GetElapsedTime(now, until) : TimeSpan.Zero;
    }

    /// <summary>Counts a failure that happened outside an attempt (a stream that broke mid-way).</summary>
    public async ValueTask ReportFailureAsync()
    {
        var context = ResilienceContextPool.Shared.Get();
        try
        {
            await Pipeline.ExecuteOutcomeAsync(
                static (_, failure) => new ValueTask<Outcome<AttemptOutcome>>(Outcome.FromResult(failure)), context, MidStreamFailure).ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private static readonly AttemptOutcome MidStreamFailure = AttemptOutcome.Failed(null, AttemptFailure.Transport, Wire.ApiError.BadGateway("stream broke"), "stream broke mid-way");

    private CircuitBreakerStrategyOptions<AttemptOutcome> Breaker(int slot, string name, double ratio, int throughput, CircuitBreakerSettings settings, Action<string, CircuitStatus>? onChange) => new()
    {
        Name = name,
        FailureRatio = ratio,
        MinimumThroughput = throughput,
        SamplingDuration = settings.SamplingDuration,
        BreakDuration = settings.BreakDuration,
        ShouldHandle = static args => new ValueTask<bool>(args.Outcome switch
        {
            { Exception: TimeoutRejectedException } => true,
            { Exception: OperationCanceledException } => false,
            { Exception: not null } => true,
            { Result: { } result } => result.CountsAgainstHealth,
            _ => false,
        }),
        OnOpened = args =>
        {
            var until = _timeProvider.GetTimestamp() + (long)(args.BreakDuration.TotalSeconds * _timeProvider.TimestampFrequency);
            Volatile.Write(ref _openUntil[slot], until);
            LogOpened(_logger, _deployment, name, args.BreakDuration.TotalSeconds);
            onChange?.Invoke(_deployment, CircuitStatus.Open);
            return default;
        },
        OnHalfOpened = _ =>
        {
            LogHalfOpened(_logger, _deployment);
            onChange?.Invoke(_deployment, CircuitStatus.HalfOpen);
            return default;
        },
        OnClosed = _ =>
        {
            Volatile.Write(ref _openUntil[slot], 0);
            LogClosed(_logger, _deployment);
            onChange?.Invoke(_deployment, CircuitStatus.Closed);
            return default;
        },
    };

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Circuit of deployment {Deployment} opened ({Breaker}) for {BreakSeconds}s")]
    private static partial void LogOpened(ILogger logger, string deployment, string breaker, double breakSeconds);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Circuit of deployment {Deployment} is half-open: one probe request will test recovery")]
    private static partial void LogHalfOpened(ILogger logger, string deployment);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Circuit of deployment {Deployment} closed: it is serving again")]
    private static partial void LogClosed(ILogger logger, string deployment);
}
