using System.Diagnostics.Metrics;
using Microsoft.Extensions.Caching.Memory;
using ModelGateway.Configuration;
using ModelGateway.Observability;

namespace ModelGateway.Routing.Affinity;

/// <summary>How prefix affinity went for one routed request.</summary>
internal enum AffinityOutcome : byte
{
    /// <summary>The prompt is shorter than the route's <c>minPrefixTokens</c>: not counted.</summary>
    None,

    /// <summary>The deployment that served the prefix last ranks first.</summary>
    Hit,

    /// <summary>No deployment is remembered for any of the request's prefixes.</summary>
    Miss,

    /// <summary>One is remembered, but health, capacity, quotas, the objective or exploration put another first.</summary>
    Overridden,
}

/// <summary>
/// Which deployment served each long prompt prefix last, per gateway process. Bounded (at most
/// <see cref="MaxEntries"/> prefixes, the least recently used evicted first by <see cref="MemoryCache"/>'s
/// compaction) and forgetting: an entry counts only for the route's <c>ttl</c> after it was last served.
/// With Redis state, <see cref="AffinitySharing"/> tells the other replicas what this one remembers, in the background.
/// </summary>
internal sealed class PrefixAffinity : IDisposable
{
    /// <summary>About 100 bytes each: the store stays under about 20 MB however many conversations run.</summary>
    public const int MaxEntries = 200_000;

    private readonly MemoryCache _entries = new(new MemoryCacheOptions { SizeLimit = MaxEntries, CompactionPercentage = 0.1 });
    private readonly TimeProvider _timeProvider;
    private readonly Counter<long> _outcomes;

    public PrefixAffinity(IMeterFactory meterFactory, TimeProvider timeProvider)
    {
        _timeProvider = timeProvider;
        _outcomes = meterFactory.Create(GatewayMetrics.MeterName).CreateCounter<long>("modelgateway.routing.affinity", "{request}",
            "Routed requests with a prompt prefix at least minPrefixTokens long, by route and affinity outcome (hit, miss, overridden).");
    }

    /// <summary>With Redis state: where what this replica remembers is sent to the others; null without Redis.</summary>
    public AffinitySharing? Sharing { get; set; }

    /// <summary>The deployment that served the longest of <paramref name="spans"/> last, and that prefix's length; null when none did within the TTL.</summary>
    public (string? Deployment, int Tokens) Lookup(PrefixSpan[] spans, long now)
    {
        foreach (var span in spans)
        {
            if (_entries.TryGetValue(span.Hash, out AffinityEntry? entry) && entry is not null && Volatile.Read(ref entry.ExpiresAt) > now)
            {
                return (entry.Deployment, span.Tokens);
            }
        }

        return (null, 0);
    }

    /// <summary>Remembers that <paramref name="deployment"/> now holds every one of <paramref name="spans"/> in its cache.</summary>
    public void Remember(PrefixSpan[] spans, string deployment, AffinitySettings settings)
    {
        var expiresAt = ExpiresAt(settings.Ttl);
        foreach (var span in spans)
        {
            Store(span.Hash, deployment, expiresAt, settings.EntryOptions);
        }

        Sharing?.Publish(spans, deployment, settings.Ttl);
    }

    /// <summary>What another replica remembered (through Redis): stored here as if served here, and not passed on.</summary>
    public void Learn(ulong hash, string deployment, TimeSpan ttl)
    {
        if (ttl <= TimeSpan.Zero || ttl > AffinitySettings.MaxTtl)
        {
            return;
        }

        Store(hash, deployment, ExpiresAt(ttl), new MemoryCacheEntryOptions { Size = 1, SlidingExpiration = ttl });
    }

    private long ExpiresAt(TimeSpan ttl) => _timeProvider.GetTimestamp() + (long)(ttl.TotalSeconds * _timeProvider.TimestampFrequency);

    private void Store(ulong hash, string deployment, long expiresAt, MemoryCacheEntryOptions options)
    {
        if (_entries.TryGetValue(hash, out AffinityEntry? entry) && entry is not null)
        {
            // A conversation's earlier prefixes are already here: refresh them in place, no allocation.
            entry.Deployment = deployment;
            Volatile.Write(ref entry.ExpiresAt, expiresAt);
            return;
        }

        _entries.Set(hash, new AffinityEntry { Deployment = deployment, ExpiresAt = expiresAt }, options);
    }

    public void Count(string route, AffinityOutcome outcome)
    {
        if (outcome == AffinityOutcome.None || !_outcomes.Enabled)
        {
            return;
        }

        _outcomes.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("outcome", outcome switch
        {
            AffinityOutcome.Hit => "hit",
            AffinityOutcome.Miss => "miss",
            _ => "overridden",
        }));
    }

    public void Dispose() => _entries.Dispose();

    private sealed class AffinityEntry
    {
        public volatile string Deployment = string.Empty;
        public long ExpiresAt;
    }
}

/// <summary>A routed request's prefixes, kept until a deployment has served it, then remembered for that deployment.</summary>
internal sealed class AffinityTicket(PrefixAffinity store, AffinitySettings settings, PrefixSpan[] spans)
{
    public void Remember(Deployment servedBy) => store.Remember(spans, servedBy.Name, settings);
}
