namespace ModelGateway.Forwarding;

/// <summary>
/// Ends an attempt's wait for upstream bytes once the upstream has been silent for the idle timeout, or
/// when the request is cancelled. Every network read restarts the clock; restarting writes one timestamp
/// and re-arms no timer: the timer fires once per timeout and, when reads came in the meantime, re-arms
/// itself for the rest. (<see cref="CancellationTokenSource.CancelAfter(TimeSpan)"/> on every read took
/// the timer queue's lock each time, a measurable share of a fast stream's CPU.)
/// </summary>
internal sealed class IdleWatchdog : IAsyncDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly TimeProvider _timeProvider;
    private readonly CancellationTokenRegistration _link;
    private readonly Lock _gate = new();
    private ITimer? _timer;
    private long _lastRead;
    private long _timeoutTicks = -1;

    public IdleWatchdog(TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        _timeProvider = timeProvider;
        _link = cancellationToken.UnsafeRegister(static state => ((IdleWatchdog)state!).Trip(), this);
    }

    /// <summary>Cancelled when the upstream stays silent past the timeout or the request is cancelled.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>A read is about to start: the upstream has <paramref name="timeout"/> from now to send something.</summary>
    public void Restart(TimeSpan timeout)
    {
        Volatile.Write(ref _lastRead, _timeProvider.GetTimestamp());
        var ticks = (long)(timeout.TotalSeconds * _timeProvider.TimestampFrequency);
        if (ticks == Volatile.Read(ref _timeoutTicks))
        {
            return;
        }

        // A new length (the first read, or the short grace after the finish): arm the timer for it now.
        lock (_gate)
        {
            Volatile.Write(ref _timeoutTicks, ticks);
            if (_timer is null)
            {
                _timer = _timeProvider.CreateTimer(static state => ((IdleWatchdog)state!).OnTimer(), this, timeout, Timeout.InfiniteTimeSpan);
            }
            else
            {
                _timer.Change(timeout, Timeout.InfiniteTimeSpan);
            }
        }
    }

    private void OnTimer()
    {
        var silent = _timeProvider.GetTimestamp() - Volatile.Read(ref _lastRead);
        var timeout = Volatile.Read(ref _timeoutTicks);
        if (silent >= timeout)
        {
            Trip();
            return;
        }

        // Reads came since the timer was armed: wait for what is left of the timeout after the latest one.
        lock (_gate)
        {
            _timer?.Change(TimeSpan.FromSeconds((timeout - silent) / (double)_timeProvider.TimestampFrequency), Timeout.InfiniteTimeSpan);
        }
    }

    private void Trip()
    {
        try
        {
            _source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The attempt ended as the timer fired.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _link.DisposeAsync().ConfigureAwait(false);
        lock (_gate)
        {
            _timer?.Dispose();
            _timer = null;
        }

        _source.Dispose();
    }
}
