using System.Globalization;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>One model's sliding-window quota: admits or refuses a request and writes the headers that go with it.</summary>
internal sealed class QuotaWindow(UpstreamQuota quota, TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly Queue<long> _admitted = new();
    private long _refused;

    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Admits or refuses one request; returns the behaviour to answer with.</summary>
    public UpstreamBehavior Apply(UpstreamBehavior chosen)
    {
        bool admitted;
        int remaining;
        TimeSpan reset;
        lock (_gate)
        {
            var now = time.GetTimestamp();
            var window = (long)(quota.Window.TotalSeconds * time.TimestampFrequency);
            while (_admitted.TryPeek(out var oldest) && now - oldest >= window)
            {
                _admitted.Dequeue();
            }

            admitted = _admitted.Count < quota.Requests;
            if (admitted)
            {
                _admitted.Enqueue(now);
            }

            remaining = quota.Requests - _admitted.Count;

            // A sliding window frees its next slot when its oldest admission leaves it.
            reset = _admitted.TryPeek(out var first) ? TimeSpan.FromSeconds((first + window - now) / (double)time.TimestampFrequency) : TimeSpan.Zero;
        }

        if (!admitted)
        {
            Interlocked.Increment(ref _refused);
        }

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (chosen.Headers is { } own)
        {
            foreach (var (name, value) in own)
            {
                headers[name] = value;
            }
        }

        switch (quota.Style)
        {
            case QuotaHeaderStyle.OpenAI:
                headers["x-ratelimit-limit-requests"] = quota.Requests.ToString(CultureInfo.InvariantCulture);
                headers["x-ratelimit-remaining-requests"] = remaining.ToString(CultureInfo.InvariantCulture);
                headers["x-ratelimit-reset-requests"] = GoDuration(reset);
                break;
            case QuotaHeaderStyle.Anthropic:
                headers["anthropic-ratelimit-requests-limit"] = quota.Requests.ToString(CultureInfo.InvariantCulture);
                headers["anthropic-ratelimit-requests-remaining"] = remaining.ToString(CultureInfo.InvariantCulture);
                headers["anthropic-ratelimit-requests-reset"] = (time.GetUtcNow() + reset).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
                break;
        }

        if (admitted)
        {
            return chosen with { Headers = headers };
        }

        if (quota.Style != QuotaHeaderStyle.None)
        {
            headers["retry-after"] = Math.Max(1, (int)Math.Ceiling(reset.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        // RetryAfter makes the other wires (Anthropic, Google) write their own 429 headers and bodies to match.
        return new UpstreamBehavior
        {
            StatusCode = 429,
            ErrorCode = "rate_limit_exceeded",
            RetryAfter = quota.Style == QuotaHeaderStyle.None ? null : reset,
            Headers = headers,
        };
    }

    // Go's time.Duration format as OpenAI sends it: "20ms", "1.5s", "6m0s".
    private static string GoDuration(TimeSpan value)
    {
        if (value < TimeSpan.FromSeconds(1))
        {
            return ((int)Math.Ceiling(value.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture) + "ms";
        }

        if (value < TimeSpan.FromMinutes(1))
        {
            return value.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s";
        }

        return string.Create(CultureInfo.InvariantCulture, $"{(int)value.TotalMinutes}m{value.Seconds}s");
    }
}
