using System.Globalization;

namespace ModelGateway.Routing.Quotas;

/// <summary>
/// The last quota a deployment's provider reported, and what the gateway has sent it since: the
/// router skips the deployment while what is left will not cover a request before its window resets.
/// Lock-free: a reading replaces an immutable snapshot, and attempts count against it with interlocked adds.
/// </summary>
internal sealed class QuotaState(TimeProvider timeProvider)
{
    // Without a reset instant a figure is trusted this long: long enough to stop a burst, short enough not to strand a deployment.
    private static readonly TimeSpan DefaultHorizon = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MinGrace = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxGrace = TimeSpan.FromSeconds(10);

    private Snapshot? _current;
    private long _requestsSince;
    private long _tokensSince;

    /// <summary>
    /// The provider's figures as of one response; -1 where it said nothing. After a requests reset the
    /// gateway does not know how much the window freed (a sliding window frees one slot, a fixed one all):
    /// until a fresh reading arrives, or the grace passes, it sends one request at a time to find out, so a
    /// reset never lets a burst into a quota that has room for one.
    /// </summary>
    private sealed record Snapshot(long Requests, long RequestsLimit, long RequestsResetAt, long GraceEndsAt, long Tokens, long TokensLimit, long TokensResetAt)
    {
        /// <summary>Learnt from a 429 that carried no quota figures, not read from headers.</summary>
        public bool Learnt { get; init; }

        /// <summary>How many learnt back-offs in a row a probe ended with another 429.</summary>
        public int Streak { get; init; }
    }

    // A hint that proved wrong is doubled, up to this: long enough to outlast the usual short windows.
    private static readonly TimeSpan MaxLearntWait = TimeSpan.FromSeconds(16);

    /// <summary>
    /// A 429 without quota figures (a bare server, Bedrock, Gemini): the same lesson as "0 requests left until
    /// <paramref name="hint"/>". After it, one request at a time finds out whether the quota has room; if that one
    /// gets 429 too, the next wait doubles. A 429 from a request sent before the back-off began changes nothing.
    /// </summary>
    public void Throttled(TimeSpan hint)
    {
        var now = timeProvider.GetTimestamp();
        var current = Volatile.Read(ref _current);
        var streak = 0;
        if (current is { Learnt: true })
        {
            if (now < current.RequestsResetAt)
            {
                return;
            }

            streak = current.Streak + 1;
        }

        var wait = hint <= TimeSpan.Zero ? DefaultHorizon : hint;
        for (var i = 0; i < streak && wait < MaxLearntWait; i++)
        {
            wait *= 2;
        }

        if (wait > MaxLearntWait && hint < MaxLearntWait)
        {
            wait = MaxLearntWait;
        }

        var resetAt = now + Ticks(wait);
        _current = new Snapshot(0, -1, resetAt, resetAt + Ticks(wait < MinGrace ? MinGrace : wait > MaxGrace ? MaxGrace : wait), -1, -1, 0) { Learnt = true, Streak = streak };
        Interlocked.Exchange(ref _requestsSince, 0);
        Interlocked.Exchange(ref _tokensSince, 0);
    }

    /// <summary>A success without quota figures: if it was the probe after a learnt back-off, the quota has room again.</summary>
    public void Answered()
    {
        if (Volatile.Read(ref _current) is { Learnt: true } current && timeProvider.GetTimestamp() >= current.RequestsResetAt)
        {
            Interlocked.CompareExchange(ref _current, null, current);
        }
    }

    /// <summary>Takes a new reading: it replaces the last one, and what was sent before it is already in its figures.</summary>
    public void Record(in QuotaReading reading)
    {
        if (reading.IsEmpty)
        {
            return;
        }

        var now = timeProvider.GetTimestamp();
        var requestsReset = reading.RequestsReset ?? DefaultHorizon;
        var grace = requestsReset < MinGrace ? MinGrace : requestsReset > MaxGrace ? MaxGrace : requestsReset;
        var resetAt = now + Ticks(requestsReset);
        _current = new Snapshot(
            reading.RequestsRemaining ?? -1,
            reading.RequestsLimit ?? -1,
            reading.RequestsRemaining is null ? 0 : resetAt,
            reading.RequestsRemaining is null ? 0 : resetAt + Ticks(grace),
            reading.TokensRemaining ?? -1,
            reading.TokensLimit ?? -1,
            reading.TokensRemaining is null ? 0 : now + Ticks(reading.TokensReset ?? DefaultHorizon));
        Interlocked.Exchange(ref _requestsSince, 0);
        Interlocked.Exchange(ref _tokensSince, 0);
    }

    /// <summary>An attempt is on its way: it counts against the last reading until the next one arrives.</summary>
    public void Consume(long tokens)
    {
        if (Volatile.Read(ref _current) is null)
        {
            return;
        }

        Interlocked.Increment(ref _requestsSince);
        Interlocked.Add(ref _tokensSince, tokens);
    }

    /// <summary>
    /// Whether the quota will not cover one more request of <paramref name="tokens"/> (input estimate plus
    /// expected output) before its reset; <paramref name="wait"/> is the time until the binding window resets.
    /// </summary>
    public bool Blocks(long now, long tokens, out TimeSpan wait) => Check(now, tokens, out wait) != Binding.None;

    /// <summary>Requests and tokens left by the current reading (net of what was sent since), or null when unknown or reset.</summary>
    public (long? Requests, long? Tokens) Headroom(long now)
    {
        if (Volatile.Read(ref _current) is not { } quota)
        {
            return (null, null);
        }

        long? requests = quota.Requests >= 0 && now < quota.RequestsResetAt ? Math.Max(0, quota.Requests - Volatile.Read(ref _requestsSince)) : null;
        long? tokens = quota.Tokens >= 0 && now < quota.TokensResetAt ? Math.Max(0, quota.Tokens - Volatile.Read(ref _tokensSince)) : null;
        return (requests, tokens);
    }

    public (long? Requests, long? Tokens) HeadroomNow() => Headroom(timeProvider.GetTimestamp());

    /// <summary>For <c>explain</c>: "quota: 0 requests left until 12:00:03".</summary>
    public string Describe(long tokens)
    {
        var now = timeProvider.GetTimestamp();
        var binding = Check(now, tokens, out var wait);
        var until = (timeProvider.GetUtcNow() + wait).ToString("HH:mm:ss", CultureInfo.InvariantCulture);
        var (requests, left) = Headroom(now);
        return binding switch
        {
            Binding.Requests => string.Create(CultureInfo.InvariantCulture, $"quota: {requests ?? 0} requests left until {until}"),
            Binding.AwaitingReading => string.Create(CultureInfo.InvariantCulture, $"quota: window reset, one request is finding out how much it freed (until {until})"),
            Binding.Tokens => string.Create(CultureInfo.InvariantCulture, $"quota: {left ?? 0} tokens left until {until}, this request needs about {tokens}"),
            _ => "quota: room left",
        };
    }

    private enum Binding
    {
        None,
        Requests,
        AwaitingReading,
        Tokens,
    }

    private Binding Check(long now, long tokens, out TimeSpan wait)
    {
        wait = TimeSpan.Zero;
        if (Volatile.Read(ref _current) is not { } quota)
        {
            return Binding.None;
        }

        var binding = Binding.None;
        if (quota.Requests >= 0)
        {
            var sent = Volatile.Read(ref _requestsSince);
            if (now < quota.RequestsResetAt)
            {
                if (quota.Requests - sent <= 0)
                {
                    binding = Binding.Requests;
                    wait = Remaining(quota.RequestsResetAt, now);
                }
            }
            else if (now < quota.GraceEndsAt && Math.Max(quota.Requests, 1) - sent <= 0)
            {
                binding = Binding.AwaitingReading;
                wait = Remaining(quota.GraceEndsAt, now);
            }
        }

        if (quota.Tokens >= 0 && now < quota.TokensResetAt && quota.Tokens - Volatile.Read(ref _tokensSince) < tokens)
        {
            var tokenWait = Remaining(quota.TokensResetAt, now);
            if (tokenWait > wait)
            {
                wait = tokenWait;
                binding = Binding.Tokens;
            }
        }

        return binding;
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * timeProvider.TimestampFrequency);

    private TimeSpan Remaining(long until, long now) => until > now ? TimeSpan.FromSeconds((until - now) / (double)timeProvider.TimestampFrequency) : TimeSpan.Zero;
}
