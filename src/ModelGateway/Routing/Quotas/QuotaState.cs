using System.Globalization;

namespace ModelGateway.Routing.Quotas;

/// <summary>
/// The last quota a deployment's provider reported, and what the gateway has sent it since: the
/// router skips the deployment while what is left will not cover a request before its window resets.
/// Lock-free: a reading replaces an immutable snapshot, and attempts count against it with interlocked adds.
/// With Redis, replicas share their newest readings (<see cref="QuotaSharing"/>): each takes its share of
/// what is left, and after a reset only the replica that took the reading probes.
/// </summary>
internal sealed class QuotaState(TimeProvider timeProvider)
{
    // Without a reset instant a figure is trusted this long: long enough to stop a burst, short enough not to strand a deployment.
    private static readonly TimeSpan DefaultHorizon = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MinGrace = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxGrace = TimeSpan.FromSeconds(10);

    // A hint that proved wrong is doubled, up to this: long enough to outlast the usual short windows.
    private static readonly TimeSpan MaxLearntWait = TimeSpan.FromSeconds(16);

    // After a probe succeeds the doubling streak is kept this long (at least): a quota that refused again within
    // a window of opening is the same quota, and starting over at 1 s would pay the whole ladder again.
    private static readonly TimeSpan MinStreakMemory = TimeSpan.FromSeconds(10);

    // While a reopened quota is on probation, at most this many requests per replica await their first byte
    // (the answer's headers: a 429 comes back as fast as a success does, so this bounds the overshoot, not throughput much).
    private const int SlowStartMaxWaiting = 2;
    private static readonly TimeSpan SlowStartPause = TimeSpan.FromMilliseconds(100);

    private Snapshot? _current;
    private long _requestsSince;
    private long _tokensSince;
    private long _answeredSince;
    private int _dirty;
    private int _replicas = 1;
    private bool _learn = true;

    /// <summary>
    /// The provider's figures as of one response; -1 where it said nothing. After a requests reset the
    /// gateway does not know how much the window freed (a sliding window frees one slot, a fixed one all):
    /// until a fresh reading arrives, or the grace passes, the replica that took the reading sends one
    /// request at a time to find out (the others wait for its reading), so a reset never lets a burst into
    /// a quota that has room for one. Instants are local timestamps; <see cref="At"/> is wall-clock Unix
    /// milliseconds, which orders readings across replicas.
    /// </summary>
    private sealed record Snapshot(long Requests, long RequestsLimit, long RequestsResetAt, long GraceEndsAt, long Tokens, long TokensLimit, long TokensResetAt)
    {
        /// <summary>Learnt from a 429 that carried no quota figures, not read from headers.</summary>
        public bool Learnt { get; init; }

        /// <summary>How many learnt back-offs in a row a probe ended with another 429.</summary>
        public int Streak { get; init; }

        /// <summary>Until when a new 429 continues the streak rather than starting over (local timestamp; 0: no memory).</summary>
        public long StreakUntil { get; init; }

        /// <summary>This replica took the reading (it probes after a reset and takes the remainder of the share).</summary>
        public bool Owner { get; init; } = true;

        public long At { get; init; }

        /// <summary>
        /// Opened again after a learnt back-off, while the streak is remembered: requests awaiting their first byte
        /// may be as many as have succeeded since, up to two (a slow start), so a burst does not meet the quota all at once.
        /// </summary>
        public bool SlowStart { get; init; }
    }

    /// <summary>Called when this replica learns something the others should know at once (a 429); set by <see cref="QuotaSharing"/>.</summary>
    public Action? Lesson { get; set; }

    /// <summary>
    /// False when the deployment's <c>quotas.learn</c> is off: the gateway then ignores what the provider says
    /// is left and what its 429s teach, and only the 429's own cool-down applies (the behaviour before quotas).
    /// </summary>
    public bool Learn
    {
        get => Volatile.Read(ref _learn);
        set
        {
            Volatile.Write(ref _learn, value);
            if (!value)
            {
                Volatile.Write(ref _current, null);
            }
        }
    }

    /// <summary>How many replicas share the quota right now (set by <see cref="QuotaSharing"/>; 1 without Redis).</summary>
    public int Replicas
    {
        get => Volatile.Read(ref _replicas);
        set => Volatile.Write(ref _replicas, Math.Max(1, value));
    }

    /// <summary>
    /// A 429 without quota figures (a bare server, Bedrock, Gemini): the same lesson as "0 requests left until
    /// <paramref name="hint"/>". After it, one request at a time finds out whether the quota has room; if that one
    /// gets 429 too, the next wait doubles, and the streak is remembered for a while after a probe succeeds.
    /// A 429 from a request sent before the back-off began changes nothing.
    /// </summary>
    public void Throttled(TimeSpan hint)
    {
        if (!Learn)
        {
            return;
        }

        var now = timeProvider.GetTimestamp();
        var current = Volatile.Read(ref _current);
        var streak = 0;
        if (current is { Learnt: true })
        {
            if (now < current.RequestsResetAt)
            {
                return;
            }

            streak = current.Requests < 0 && now > current.StreakUntil ? 0 : current.Streak + 1;
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
        Replace(new Snapshot(0, -1, resetAt, resetAt + Ticks(Clamp(wait)), -1, -1, 0) { Learnt = true, Streak = streak, At = UnixMs() });
        Lesson?.Invoke();
    }

    /// <summary>
    /// A success without quota figures: if it was the probe after a learnt back-off, the quota has room again.
    /// The streak is kept (for a full back-off, at least <see cref="MinStreakMemory"/>), so a quota that refuses
    /// again soon backs off for longer, not from the start.
    /// </summary>
    public void Answered()
    {
        var latest = Volatile.Read(ref _current);
        if (latest is { SlowStart: true })
        {
            Interlocked.Increment(ref _answeredSince);
            return;
        }

        if (latest is { Learnt: true, Requests: >= 0 } current && timeProvider.GetTimestamp() is var now && now >= current.RequestsResetAt)
        {
            var memory = Math.Max(Ticks(MinStreakMemory), 2 * Math.Max(0, current.GraceEndsAt - current.RequestsResetAt));
            var open = new Snapshot(-1, -1, now, now, -1, -1, 0) { Learnt = true, Streak = current.Streak, StreakUntil = now + memory, At = UnixMs(), SlowStart = true };
            if (Interlocked.CompareExchange(ref _current, open, current) == current)
            {
                // The probe itself is the first success of the slow start.
                Interlocked.Exchange(ref _requestsSince, 1);
                Interlocked.Exchange(ref _answeredSince, 1);
                Volatile.Write(ref _dirty, 1);
            }
        }
    }

    /// <summary>Takes a new reading: it replaces the last one, and what was sent before it is already in its figures.</summary>
    public void Record(in QuotaReading reading)
    {
        if (reading.IsEmpty || !Learn)
        {
            return;
        }

        var now = timeProvider.GetTimestamp();
        var requestsReset = reading.RequestsReset ?? DefaultHorizon;
        var resetAt = now + Ticks(requestsReset);
        Replace(new Snapshot(
            reading.RequestsRemaining ?? -1,
            reading.RequestsLimit ?? -1,
            reading.RequestsRemaining is null ? 0 : resetAt,
            reading.RequestsRemaining is null ? 0 : resetAt + Ticks(Clamp(requestsReset)),
            reading.TokensRemaining ?? -1,
            reading.TokensLimit ?? -1,
            reading.TokensRemaining is null ? 0 : now + Ticks(reading.TokensReset ?? DefaultHorizon)) { At = UnixMs() });
    }

    private void Replace(Snapshot snapshot)
    {
        Volatile.Write(ref _current, snapshot);
        Interlocked.Exchange(ref _requestsSince, 0);
        Interlocked.Exchange(ref _answeredSince, 0);
        Interlocked.Exchange(ref _tokensSince, 0);
        Volatile.Write(ref _dirty, 1);
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
    /// For sharing: this replica's own newest reading, once per reading (false when there is none new, or the
    /// current one came from another replica). Instants are converted to wall-clock Unix milliseconds.
    /// </summary>
    public bool TryTakeShare(out SharedQuota share)
    {
        share = default;
        if (Interlocked.Exchange(ref _dirty, 0) == 0 || Volatile.Read(ref _current) is not { Owner: true } quota)
        {
            return false;
        }

        var now = timeProvider.GetTimestamp();
        var nowMs = UnixMs();
        share = new SharedQuota(
            quota.At,
            quota.Requests,
            quota.RequestsLimit,
            ToUnixMs(quota.RequestsResetAt, now, nowMs),
            ToUnixMs(quota.GraceEndsAt, now, nowMs),
            quota.Tokens,
            quota.TokensLimit,
            ToUnixMs(quota.TokensResetAt, now, nowMs),
            quota.Learnt,
            quota.Streak,
            ToUnixMs(quota.StreakUntil, now, nowMs));
        return true;
    }

    /// <summary>Another replica's reading, taken when it is newer than this replica's: its figures now bind here too.</summary>
    public void Adopt(in SharedQuota share)
    {
        if (!Learn || (Volatile.Read(ref _current) is { } current && current.At >= share.At))
        {
            return;
        }

        var now = timeProvider.GetTimestamp();
        var nowMs = UnixMs();
        Volatile.Write(ref _current, new Snapshot(
            share.Requests,
            share.RequestsLimit,
            FromUnixMs(share.RequestsResetAt, now, nowMs),
            FromUnixMs(share.GraceEndsAt, now, nowMs),
            share.Tokens,
            share.TokensLimit,
            FromUnixMs(share.TokensResetAt, now, nowMs))
        {
            Learnt = share.Learnt,
            Streak = share.Streak,
            StreakUntil = FromUnixMs(share.StreakUntil, now, nowMs),
            Owner = false,
            At = share.At,
            SlowStart = share.Learnt && share.Requests < 0,
        });
        Interlocked.Exchange(ref _requestsSince, 0);
        Interlocked.Exchange(ref _answeredSince, 0);
        Interlocked.Exchange(ref _tokensSince, 0);
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

    /// <summary>For the live page: the figures and limits of the current reading, with the time to its reset.</summary>
    public QuotaView? View()
    {
        if (Volatile.Read(ref _current) is not { } quota)
        {
            return null;
        }

        var now = timeProvider.GetTimestamp();
        var (requests, tokens) = Headroom(now);
        return new QuotaView(
            requests,
            quota.RequestsLimit >= 0 ? quota.RequestsLimit : null,
            tokens,
            quota.TokensLimit >= 0 ? quota.TokensLimit : null,
            Remaining(Math.Max(quota.RequestsResetAt, quota.TokensResetAt), now),
            quota.Learnt,
            quota.Streak);
    }

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
            Binding.Share => string.Create(CultureInfo.InvariantCulture, $"quota: this replica's share of the {requests ?? 0} requests left is spent until {until}"),
            Binding.AwaitingReading => string.Create(CultureInfo.InvariantCulture, $"quota: window reset, one request is finding out how much it freed (until {until})"),
            Binding.SlowStart => "quota: reopened after a learnt back-off, at most 2 requests at a time await an answer",
            Binding.Tokens => string.Create(CultureInfo.InvariantCulture, $"quota: {left ?? 0} tokens left until {until}, this request needs about {tokens}"),
            _ => "quota: room left",
        };
    }

    private enum Binding
    {
        None,
        Requests,
        Share,
        AwaitingReading,
        SlowStart,
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
        var replicas = Volatile.Read(ref _replicas);
        if (quota.SlowStart)
        {
            // Requests awaiting their first byte may be as many as have succeeded since the quota reopened, up to
            // SlowStartMaxWaiting: a burst then meets a quota near its end a couple of requests at a time, not all at once.
            var answered = Volatile.Read(ref _answeredSince);
            if (now < quota.StreakUntil && Volatile.Read(ref _requestsSince) - answered >= Math.Clamp(answered, 1, SlowStartMaxWaiting))
            {
                wait = SlowStartPause;
                return Binding.SlowStart;
            }

            return Binding.None;
        }

        if (quota.Learnt && quota.Requests >= 0 && now >= quota.GraceEndsAt && now < quota.GraceEndsAt + (2 * (quota.GraceEndsAt - quota.RequestsResetAt)))
        {
            // The prober's reading never came (it had no traffic, or its probe failed otherwise): every replica now
            // probes, one request at a time, rather than all opening at once onto a quota that may still be spent.
            if (Volatile.Read(ref _requestsSince) - Volatile.Read(ref _answeredSince) >= 1)
            {
                wait = SlowStartPause;
                return Binding.AwaitingReading;
            }

            return Binding.None;
        }

        if (quota.Requests >= 0)
        {
            var sent = Volatile.Read(ref _requestsSince);
            if (now < quota.RequestsResetAt)
            {
                if (Share(quota.Requests, replicas, quota.Owner) - sent <= 0)
                {
                    binding = quota.Requests - sent <= 0 ? Binding.Requests : Binding.Share;
                    wait = Remaining(quota.RequestsResetAt, now);
                }
            }
            else if (now < quota.GraceEndsAt)
            {
                // After the reset: the reading's owner probes (one request, or its share of what was left); the others wait for its reading.
                var allowance = quota.Owner ? Math.Max(Share(quota.Requests, replicas, true), 1) : Share(quota.Requests, replicas, false);
                if (allowance - sent <= 0)
                {
                    binding = Binding.AwaitingReading;
                    wait = Remaining(quota.GraceEndsAt, now);
                }
            }
        }

        if (quota.Tokens >= 0 && now < quota.TokensResetAt && Share(quota.Tokens, replicas, quota.Owner) - Volatile.Read(ref _tokensSince) < tokens)
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

    // Each replica takes an equal share of what is left; the one that took the reading also takes the remainder,
    // so the shares add up to the reading exactly.
    private static long Share(long left, int replicas, bool owner) => replicas <= 1 ? left : (left / replicas) + (owner ? left % replicas : 0);

    private static TimeSpan Clamp(TimeSpan wait) => wait < MinGrace ? MinGrace : wait > MaxGrace ? MaxGrace : wait;

    private long UnixMs() => timeProvider.GetUtcNow().ToUnixTimeMilliseconds();

    private long ToUnixMs(long timestamp, long now, long nowMs) => timestamp == 0 ? 0 : nowMs + (long)((timestamp - now) * 1000.0 / timeProvider.TimestampFrequency);

    private long FromUnixMs(long unixMs, long now, long nowMs) => unixMs == 0 ? 0 : Math.Max(1, now + (long)((unixMs - nowMs) / 1000.0 * timeProvider.TimestampFrequency));

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * timeProvider.TimestampFrequency);

    private TimeSpan Remaining(long until, long now) => until > now ? TimeSpan.FromSeconds((until - now) / (double)timeProvider.TimestampFrequency) : TimeSpan.Zero;
}

/// <summary>One replica's reading as it travels through Redis: instants in wall-clock Unix milliseconds, -1 for "not said", 0 for "no instant".</summary>
internal readonly record struct SharedQuota(
    long At,
    long Requests,
    long RequestsLimit,
    long RequestsResetAt,
    long GraceEndsAt,
    long Tokens,
    long TokensLimit,
    long TokensResetAt,
    bool Learnt,
    int Streak,
    long StreakUntil);

/// <summary>What the live page shows of a deployment's quota.</summary>
internal sealed record QuotaView(long? RequestsLeft, long? RequestsLimit, long? TokensLeft, long? TokensLimit, TimeSpan ResetIn, bool Learnt, int Streak);
