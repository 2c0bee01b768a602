using System.Collections.Concurrent;
using ModelGateway.Forwarding;

namespace ModelGateway.State;

/// <summary>Records what each request used and cost, per key, team, model, deployment and day.</summary>
internal interface IUsageRecorder
{
    ValueTask RecordAsync(GatewayRequest request, TimeSpan elapsed);
}

/// <summary>Answers usage questions over a date range, grouped one way.</summary>
internal interface IUsageQuery
{
    ValueTask<IReadOnlyList<UsageRow>> QueryAsync(UsageFilter filter, CancellationToken cancellationToken);
}

/// <summary>How usage is grouped in a report.</summary>
internal enum UsageGrouping
{
    Key,
    Team,
    Model,
    Deployment,
    Day,
}

/// <summary>A usage question: a date range (inclusive, UTC days), optional filters, one grouping.</summary>
internal sealed record UsageFilter(DateOnly From, DateOnly To, UsageGrouping GroupBy, string? KeyId = null, string? Team = null, string? Model = null, string? Deployment = null);

/// <summary>One line of a usage report.</summary>
internal sealed record UsageRow(
    string Group,
    long Requests,
    long Errors,
    long InputTokens,
    long CachedTokens,
    long OutputTokens,
    double CostUsd,
    double AverageLatencyMs,
    double AverageTtftMs)
{
    /// <summary>Input tokens written to a provider's prompt cache (part of <see cref="InputTokens"/>).</summary>
    public long CacheWriteTokens { get; init; }

    /// <summary>Output tokens spent on reasoning (part of <see cref="OutputTokens"/>).</summary>
    public long ReasoningTokens { get; init; }

    /// <summary>Requests answered from the response cache (part of <see cref="Requests"/>; they spent no provider tokens).</summary>
    public long CacheHits { get; init; }

    /// <summary>Provider tokens (input and output) the cache hits did not spend: what the stored answers cost to make.</summary>
    public long CacheSavedTokens { get; init; }

    /// <summary>Money the cache hits did not spend (USD), at the prices of the deployments that made the stored answers.</summary>
    public double CacheSavedUsd { get; init; }
}

/// <summary>The dimensions one usage counter is kept under.</summary>
internal readonly record struct UsageKey(int Day, string KeyId, string KeyName, string Team, string Model, string Deployment);

/// <summary>Running totals for one <see cref="UsageKey"/>.</summary>
internal sealed class UsageTotals
{
    public long Requests;
    public long Errors;
    public long InputTokens;
    public long CachedTokens;
    public long CacheWriteTokens;
    public long OutputTokens;
    public long ReasoningTokens;
    public double CostUsd;
    public double LatencyMs;
    public double TtftMs;
    public long TtftSamples;
    public long CacheHits;
    public long CacheSavedTokens;
    public double CacheSavedUsd;

    public void Add(GatewayRequest request, TimeSpan elapsed)
    {
        lock (this)
        {
            Requests++;
            if (request.StatusCode is < 200 or > 299 || !request.StreamCompleted)
            {
                Errors++;
            }

            InputTokens += request.Usage.Input;
            CachedTokens += request.Usage.CacheRead;
            CacheWriteTokens += request.Usage.CacheWrite;
            OutputTokens += request.Usage.Output;
            ReasoningTokens += request.Usage.Reasoning;
            CostUsd += request.Cost;
            if (request.CachePlan is { IsHit: true } hit)
            {
                CacheHits++;
                CacheSavedTokens += hit.SavedUsage.Input + hit.SavedUsage.Output;
                CacheSavedUsd += hit.SavedCost;
            }

            LatencyMs += elapsed.TotalMilliseconds;
            if (request.TimeToFirstToken > TimeSpan.Zero)
            {
                TtftMs += request.TimeToFirstToken.TotalMilliseconds;
                TtftSamples++;
            }
        }
    }
}

/// <summary>Usage kept in this process: the embedded default, for one replica.</summary>
internal sealed class InMemoryUsageStore(TimeProvider timeProvider) : IUsageRecorder, IUsageQuery
{
    private readonly ConcurrentDictionary<UsageKey, UsageTotals> _totals = new();

    public ValueTask RecordAsync(GatewayRequest request, TimeSpan elapsed)
    {
        var key = UsageKeys.For(request, timeProvider.GetUtcNow());
        _totals.GetOrAdd(key, static _ => new UsageTotals()).Add(request, elapsed);
        return default;
    }

    public ValueTask<IReadOnlyList<UsageRow>> QueryAsync(UsageFilter filter, CancellationToken cancellationToken)
    {
        var from = UsageKeys.DayNumber(filter.From);
        var to = UsageKeys.DayNumber(filter.To);
        var rows = new Dictionary<string, UsageTotals>(StringComparer.Ordinal);
        foreach (var (key, totals) in _totals)
        {
            if (key.Day < from || key.Day > to || !UsageKeys.Matches(key, filter))
            {
                continue;
            }

            var group = UsageKeys.Group(key, filter.GroupBy);
            if (!rows.TryGetValue(group, out var sum))
            {
                sum = new UsageTotals();
                rows[group] = sum;
            }

            lock (totals)
            {
                UsageKeys.Accumulate(sum, totals);
            }
        }

        return new ValueTask<IReadOnlyList<UsageRow>>(UsageKeys.ToRows(rows));
    }
}

/// <summary>Shared rules for keying, filtering and summing usage, so both stores report alike.</summary>
internal static class UsageKeys
{
    public static UsageKey For(GatewayRequest request, DateTimeOffset now) => new(
        Periods.Day(now),
        request.Caller.KeyId ?? "anonymous",
        request.Caller.Name,
        request.Caller.Team ?? string.Empty,
        request.Route?.Name ?? string.Empty,
        request.ServedBy?.Name ?? string.Empty);

    public static int DayNumber(DateOnly day) => (day.Year * 10000) + (day.Month * 100) + day.Day;

    public static bool Matches(in UsageKey key, UsageFilter filter)
        => (filter.KeyId is null || key.KeyId == filter.KeyId)
           && (filter.Team is null || key.Team == filter.Team)
           && (filter.Model is null || key.Model == filter.Model)
           && (filter.Deployment is null || key.Deployment == filter.Deployment);

    public static string Group(in UsageKey key, UsageGrouping grouping) => grouping switch
    {
        UsageGrouping.Key => key.KeyName,
        UsageGrouping.Team => key.Team,
        UsageGrouping.Model => key.Model,
        UsageGrouping.Deployment => key.Deployment,
        _ => $"{key.Day / 10000:D4}-{key.Day / 100 % 100:D2}-{key.Day % 100:D2}",
    };

    public static void Accumulate(UsageTotals sum, UsageTotals add)
    {
        sum.Requests += add.Requests;
        sum.Errors += add.Errors;
        sum.InputTokens += add.InputTokens;
        sum.CachedTokens += add.CachedTokens;
        sum.CacheWriteTokens += add.CacheWriteTokens;
        sum.OutputTokens += add.OutputTokens;
        sum.ReasoningTokens += add.ReasoningTokens;
        sum.CostUsd += add.CostUsd;
        sum.LatencyMs += add.LatencyMs;
        sum.TtftMs += add.TtftMs;
        sum.TtftSamples += add.TtftSamples;
        sum.CacheHits += add.CacheHits;
        sum.CacheSavedTokens += add.CacheSavedTokens;
        sum.CacheSavedUsd += add.CacheSavedUsd;
    }

    public static IReadOnlyList<UsageRow> ToRows(Dictionary<string, UsageTotals> rows)
    {
        var result = new List<UsageRow>(rows.Count);
        foreach (var (group, t) in rows)
        {
            result.Add(new UsageRow(group, t.Requests, t.Errors, t.InputTokens, t.CachedTokens, t.OutputTokens, Math.Round(t.CostUsd, 8),
                t.Requests == 0 ? 0 : Math.Round(t.LatencyMs / t.Requests, 2),
                t.TtftSamples == 0 ? 0 : Math.Round(t.TtftMs / t.TtftSamples, 2))
            {
                CacheWriteTokens = t.CacheWriteTokens,
                ReasoningTokens = t.ReasoningTokens,
                CacheHits = t.CacheHits,
                CacheSavedTokens = t.CacheSavedTokens,
                CacheSavedUsd = Math.Round(t.CacheSavedUsd, 8),
            });
        }

        result.Sort(static (a, b) => b.CostUsd.CompareTo(a.CostUsd) is var byCost and not 0 ? byCost : string.CompareOrdinal(a.Group, b.Group));
        return result;
    }
}
