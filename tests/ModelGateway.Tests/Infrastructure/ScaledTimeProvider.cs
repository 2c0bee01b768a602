using System.Diagnostics;

namespace ModelGateway.Tests.Infrastructure;

/// <summary>
/// A clock that runs <c>speed</c> times faster than real time, for tests that must live through minutes
/// of the gateway's time in seconds while real traffic flows: every timestamp, date and timer the gateway
/// reads is scaled alike, so its own logic (breaks, probe intervals, budget windows, backoffs) runs
/// unchanged. Network latency is real, so it looks <c>speed</c> times longer to the gateway.
/// </summary>
internal sealed class ScaledTimeProvider(double speed) : TimeProvider
{
    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly DateTimeOffset _startUtc = DateTimeOffset.UtcNow;

    /// <summary>The gateway's time since this clock started.</summary>
    public TimeSpan Elapsed => TimeSpan.FromTicks((long)(Stopwatch.GetElapsedTime(_start).Ticks * speed));

    public override long TimestampFrequency => Stopwatch.Frequency;

    public override long GetTimestamp() => _start + (long)((Stopwatch.GetTimestamp() - _start) * speed);

    public override DateTimeOffset GetUtcNow() => _startUtc + Elapsed;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        => new ScaledTimer(System.CreateTimer(callback, state, Scale(dueTime), Scale(period)), this);

    /// <summary>Waits until the gateway's clock shows <paramref name="elapsed"/>.</summary>
    public async Task WaitUntilAsync(TimeSpan elapsed)
    {
        var left = elapsed - Elapsed;
        if (left > TimeSpan.Zero)
        {
            await Task.Delay(Scale(left));
        }
    }

    private TimeSpan Scale(TimeSpan value) => value == Timeout.InfiniteTimeSpan || value <= TimeSpan.Zero
        ? value
        : TimeSpan.FromTicks(Math.Max(1, (long)(value.Ticks / speed)));

    // CancellationTokenSource.CancelAfter re-arms its timer through Change: that must be scaled too.
    private sealed class ScaledTimer(ITimer inner, ScaledTimeProvider clock) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(clock.Scale(dueTime), clock.Scale(period));

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
