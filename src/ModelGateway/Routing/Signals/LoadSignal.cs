using System.Globalization;

namespace ModelGateway.Routing.Signals;

/// <summary>
/// One scrape of a server's own load. <paramref name="KvUsage"/> is a fraction (0..1), null when the
/// server does not report it. <paramref name="ScrapedAtUnixMs"/> is wall-clock, so a reading shared by
/// another replica through Redis ages the same way everywhere.
/// </summary>
internal sealed record LoadReading(double Waiting, double Running, double? KvUsage, long ScrapedAtUnixMs);

/// <summary>
/// The latest load reading of one deployment. Written by the scraper loop, read lock-free by the router:
/// one volatile reference, so the request path neither locks nor allocates to look at it.
/// </summary>
internal sealed class LoadSignal
{
    private LoadReading? _reading;
    private long _nextDueUnixMs;
    private int _failures;

    public LoadReading? Reading => Volatile.Read(ref _reading);

    /// <summary>Scrapes that failed in a row; reset by a good one.</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _failures);

    public void Publish(LoadReading reading)
    {
        Volatile.Write(ref _reading, reading);
        Volatile.Write(ref _failures, 0);
    }

    public void Failed() => Interlocked.Increment(ref _failures);

    /// <summary>Forgets the reading (metrics removed from the deployment on reload).</summary>
    public void Clear() => Volatile.Write(ref _reading, null);

    internal bool IsDue(long nowUnixMs) => nowUnixMs >= Volatile.Read(ref _nextDueUnixMs);

    internal void ScheduleNext(long atUnixMs) => Volatile.Write(ref _nextDueUnixMs, atUnixMs);

    /// <summary>The reading when it is younger than the settings' stale age; null otherwise (fall back, never block).</summary>
    public LoadReading? FreshAt(DateTimeOffset now, LoadMetricsSettings settings)
    {
        var reading = Reading;
        return reading is not null && now.ToUnixTimeMilliseconds() - reading.ScrapedAtUnixMs <= (long)settings.StaleAfter.TotalMilliseconds ? reading : null;
    }

    /// <summary>Whether a fresh reading says new requests would wait: more queued than allowed, or the KV cache full.</summary>
    public static bool IsQueueing(LoadReading reading, LoadMetricsSettings settings)
        => reading.Waiting > settings.MaxQueue || reading.KvUsage >= LoadMetricsSettings.KvSaturated;

    /// <summary>"queueing: 12 waiting, 16 running (scraped 0.8s ago)" for explain and the live page.</summary>
    public static string Describe(LoadReading reading, DateTimeOffset now, LoadMetricsSettings settings)
    {
        var age = Math.Max(0, now.ToUnixTimeMilliseconds() - reading.ScrapedAtUnixMs) / 1000.0;
        var kv = reading.KvUsage is { } used ? string.Create(CultureInfo.InvariantCulture, $", KV cache {used:P0} used") : string.Empty;
        var state = IsQueueing(reading, settings) ? "queueing" : "ok";
        return string.Create(CultureInfo.InvariantCulture, $"{state}: {reading.Waiting:0.##} waiting, {reading.Running:0.##} running{kv} (scraped {age:0.0}s ago)");
    }
}
