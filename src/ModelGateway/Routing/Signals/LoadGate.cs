namespace ModelGateway.Routing.Signals;

/// <summary>What the router asks of a deployment's load signal: one volatile read and two comparisons.</summary>
internal static class LoadGate
{
    /// <summary>
    /// True when a fresh reading says new requests would wait at the server. A stale or missing reading
    /// says nothing: routing falls back to in-flight counts and measured latency, it never blocks.
    /// </summary>
    public static bool IsQueueing(LoadSignal signal, LoadMetricsSettings settings, DateTimeOffset now)
        => signal.FreshAt(now, settings) is { } reading && LoadSignal.IsQueueing(reading, settings);
}
