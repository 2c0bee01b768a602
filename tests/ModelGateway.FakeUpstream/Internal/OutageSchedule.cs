namespace ModelGateway.FakeUpstream.Internal;

/// <summary>
/// Scheduled outages per model: windows on the fake's clock during which every request for the model is
/// answered with an error status (the wire's own error body), whatever behaviour was queued or set.
/// </summary>
internal sealed class OutageSchedule(TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly List<Window> _windows = [];
    private long _refused;
    private bool _any;

    /// <summary>Requests answered with an outage's status so far.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    public void Add(string model, TimeSpan start, TimeSpan duration, int statusCode)
    {
        var from = time.GetTimestamp() + Ticks(start);
        lock (_gate)
        {
            _windows.Add(new Window(model, from, from + Ticks(duration), statusCode));
        }

        Volatile.Write(ref _any, true);
    }

    /// <summary>The outage's error behaviour when <paramref name="model"/> is inside one of its windows now, else null.</summary>
    public UpstreamBehavior? Active(string model)
    {
        var now = time.GetTimestamp();
        lock (_gate)
        {
            foreach (var window in _windows)
            {
                if (now >= window.From && now < window.Until && string.Equals(window.Model, model, StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref _refused);
                    return window.Behavior;
                }
            }
        }

        return null;
    }

    /// <summary>Whether any window has been scheduled: lets the request path skip the lock when none has.</summary>
    public bool Any => Volatile.Read(ref _any);

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * time.TimestampFrequency);

    private sealed record Window(string Model, long From, long Until, int StatusCode)
    {
        public UpstreamBehavior Behavior { get; } = new() { StatusCode = StatusCode };
    }
}
