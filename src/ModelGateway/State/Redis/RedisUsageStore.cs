using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using ModelGateway.Forwarding;
using StackExchange.Redis;

namespace ModelGateway.State.Redis;

/// <summary>
/// Usage totals in Redis, one hash per day (<c>{mg:usage}:yyyyMMdd</c>), so every replica adds to the
/// same numbers. Increments are merged in memory and written every <c>State:UsageFlushInterval</c>
/// (one script call per flush, not one per request), on every query from this replica, and at
/// shutdown. While Redis is unreachable they are held and written when it comes back: usage is never
/// silently dropped, and never counted twice: each flush is a numbered batch, sent again unchanged
/// until Redis has answered it, and Redis applies each replica's batch numbers once.
/// Budgets do not depend on this: the limiter settles spend per request.
/// </summary>
internal sealed partial class RedisUsageStore : IUsageRecorder, IUsageQuery, IAsyncDisposable
{
    private const char Separator = '\u001f';
    private const int MaxEntriesPerBatch = 256;
    private static readonly RedisKey Prefix = "{mg:usage}";

    private readonly RedisConnection _redis;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RedisUsageStore> _logger;
    private readonly ConcurrentDictionary<(string Day, string Dimensions), PendingTotals> _pending = new();
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private readonly TimeSpan _flushInterval;
    private readonly ITimer? _timer;

    // This process's batches: a random id (restarts never reuse numbers) and the last number used.
    private readonly string _replicaId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
    private long _sequence;

    // The batch sent and not yet answered; only ever touched under _flushing. It goes again, as it is,
    // before anything newer, so Redis sees each replica's numbers in order.
    private UsageBatch? _unanswered;

    public RedisUsageStore(RedisConnection redis, IOptions<StateOptions> options, TimeProvider timeProvider, ILogger<RedisUsageStore> logger)
    {
        _redis = redis;
        _timeProvider = timeProvider;
        _logger = logger;
        _flushInterval = options.Value.UsageFlushInterval;
        _redis.Restored += () => _ = FlushAsync(afterOutage: true);
        if (_flushInterval > TimeSpan.Zero)
        {
            _timer = timeProvider.CreateTimer(static state => ((RedisUsageStore)state!).FlushOnTimer(), this, _flushInterval, _flushInterval);
        }
    }

    private static readonly string[] Metrics = ["requests", "errors", "input", "cached", "output", "cost", "latency_ms", "ttft_ms", "ttft_samples", "cache_write", "reasoning", "cache_hits", "cache_saved_tokens", "cache_saved_usd"];

    public ValueTask RecordAsync(GatewayRequest request, TimeSpan elapsed)
    {
        var key = UsageKeys.For(request, _timeProvider.GetUtcNow());
        Hold(key.Day.ToString(CultureInfo.InvariantCulture), Dimensions(key), Values(request, elapsed));
        if (_flushInterval == TimeSpan.Zero && _redis.IsAvailable)
        {
            // Written at once; concurrent requests' usage merges into the batch being written.
            _ = FlushAsync(afterOutage: false);
        }

        return default;
    }

    public async ValueTask<IReadOnlyList<UsageRow>> QueryAsync(UsageFilter filter, CancellationToken cancellationToken)
    {
        if (_redis.IsAvailable)
        {
            // Read your own writes: what this replica still holds goes first.
            await FlushAsync(afterOutage: false).ConfigureAwait(false);
        }

        var rows = new Dictionary<string, UsageTotals>(StringComparer.Ordinal);
        for (var day = filter.From; day <= filter.To; day = day.AddDays(1))
        {
            var dayNumber = UsageKeys.DayNumber(day);
            var entries = await _redis.Database.HashGetAllAsync($"{Prefix}:{dayNumber}").ConfigureAwait(false);
            var byDimensions = new Dictionary<string, UsageTotals>(StringComparer.Ordinal);
            foreach (var entry in entries)
            {
                var field = (string)entry.Name!;
                var bar = field.LastIndexOf('|');
                if (bar < 0)
                {
                    continue;
                }

                var dimensions = field[..bar];
                if (!byDimensions.TryGetValue(dimensions, out var totals))
                {
                    totals = new UsageTotals();
                    byDimensions[dimensions] = totals;
                }

                Set(totals, field[(bar + 1)..], (double)entry.Value);
            }

            foreach (var (dimensions, totals) in byDimensions)
            {
                var parts = dimensions.Split(Separator);
                if (parts.Length != 5)
                {
                    continue;
                }

                var key = new UsageKey(dayNumber, parts[0], parts[1], parts[2], parts[3], parts[4]);
                if (!UsageKeys.Matches(key, filter))
                {
                    continue;
                }

                var group = UsageKeys.Group(key, filter.GroupBy);
                if (!rows.TryGetValue(group, out var sum))
                {
                    sum = new UsageTotals();
                    rows[group] = sum;
                }

                UsageKeys.Accumulate(sum, totals);
            }
        }

        return UsageKeys.ToRows(rows);
    }

    private void Hold(string day, string dimensions, double[] values)
    {
        while (true)
        {
            var pending = _pending.GetOrAdd((day, dimensions), static _ => new PendingTotals());
            lock (pending)
            {
                // A flush may have taken this entry between the lookup and the lock: add to a fresh one.
                if (pending.Taken)
                {
                    continue;
                }

                for (var i = 0; i < values.Length; i++)
                {
                    pending.Values[i] += values[i];
                }

                return;
            }
        }
    }

    private void FlushOnTimer()
    {
        if ((!_pending.IsEmpty || _unanswered is not null) && _redis.IsAvailable)
        {
            _ = FlushAsync(afterOutage: false);
        }
    }

    private async Task FlushAsync(bool afterOutage)
    {
        await _flushing.WaitAsync().ConfigureAwait(false);
        try
        {
            var flushed = 0;
            while ((_unanswered ??= NextBatch()) is { } batch)
            {
                try
                {
                    await _redis.WaitAsync(RedisScripts.RecordUsageScript.EvaluateAsync(_redis.Database, [Prefix], batch.Arguments), "usage").ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    // Kept as it is, number and all: if Redis did apply it, sending it again is a no-op.
                    _redis.ReportFailure(ex);
                    break;
                }

                _unanswered = null;
                flushed += batch.Entries;
            }

            if (flushed > 0 && afterOutage)
            {
                LogFlushed(_logger, flushed);
            }
        }
        catch (ObjectDisposedException)
        {
            // Shutting down: the connection went first.
        }
        finally
        {
            _flushing.Release();
        }
    }

    // Takes up to MaxEntriesPerBatch merged totals into the next numbered batch; null when nothing waits.
    private UsageBatch? NextBatch()
    {
        List<(string Day, string Dimensions, double[] Values)>? entries = null;
        foreach (var key in _pending.Keys)
        {
            if (!_pending.TryRemove(key, out var pending))
            {
                continue;
            }

            lock (pending)
            {
                pending.Taken = true;
            }

            (entries ??= []).Add((key.Day, key.Dimensions, pending.Values));
            if (entries.Count == MaxEntriesPerBatch)
            {
                break;
            }
        }

        if (entries is null)
        {
            return null;
        }

        var args = new RedisValue[3 + (entries.Count * (2 + Metrics.Length))];
        args[0] = _replicaId;
        args[1] = ++_sequence;
        args[2] = entries.Count;
        var at = 3;
        foreach (var (day, dimensions, values) in entries)
        {
            args[at++] = day;
            args[at++] = dimensions;
            foreach (var value in values)
            {
                args[at++] = value.ToString("R", CultureInfo.InvariantCulture);
            }
        }

        return new UsageBatch(args, entries.Count);
    }

    public async ValueTask DisposeAsync()
    {
        if (_timer is not null)
        {
            await _timer.DisposeAsync().ConfigureAwait(false);
        }

        if ((!_pending.IsEmpty || _unanswered is not null) && _redis.IsAvailable)
        {
            await FlushAsync(afterOutage: false).ConfigureAwait(false);
        }
    }

    /// <summary>Increments for one day, key, model and deployment, merged until the next flush.</summary>
    private sealed class PendingTotals
    {
        public readonly double[] Values = new double[Metrics.Length];
        public bool Taken;
    }

    /// <summary>One numbered flush, as the script reads it.</summary>
    private sealed record UsageBatch(RedisValue[] Arguments, int Entries);

    private static string Dimensions(in UsageKey key)
        => string.Join(Separator, Clean(key.KeyId), Clean(key.KeyName), Clean(key.Team), Clean(key.Model), Clean(key.Deployment));

    private static string Clean(string value) => value.Replace(Separator, ' ').Replace('|', '/');

    private static double[] Values(GatewayRequest request, TimeSpan elapsed)
    {
        var hit = request.CachePlan is { IsHit: true } plan ? plan : null;
        return
        [
            1,
            request.StatusCode is < 200 or > 299 || !request.StreamCompleted ? 1 : 0,
            request.Usage.Input,
            request.Usage.CacheRead,
            request.Usage.Output,
            request.Cost,
            elapsed.TotalMilliseconds,
            request.TimeToFirstToken.TotalMilliseconds,
            request.TimeToFirstToken > TimeSpan.Zero ? 1 : 0,
            request.Usage.CacheWrite,
            request.Usage.Reasoning,
            hit is null ? 0 : 1,
            hit is null ? 0 : hit.SavedUsage.Input + hit.SavedUsage.Output,
            hit?.SavedCost ?? 0,
        ];
    }

    private static void Set(UsageTotals totals, string metric, double value)
    {
        switch (metric)
        {
            case "requests": totals.Requests += (long)value; break;
            case "errors": totals.Errors += (long)value; break;
            case "input": totals.InputTokens += (long)value; break;
            case "cached": totals.CachedTokens += (long)value; break;
            case "output": totals.OutputTokens += (long)value; break;
            case "cost": totals.CostUsd += value; break;
            case "latency_ms": totals.LatencyMs += value; break;
            case "ttft_ms": totals.TtftMs += value; break;
            case "ttft_samples": totals.TtftSamples += (long)value; break;
            case "cache_write": totals.CacheWriteTokens += (long)value; break;
            case "reasoning": totals.ReasoningTokens += (long)value; break;
            case "cache_hits": totals.CacheHits += (long)value; break;
            case "cache_saved_tokens": totals.CacheSavedTokens += (long)value; break;
            case "cache_saved_usd": totals.CacheSavedUsd += value; break;
        }
    }

    [LoggerMessage(EventId = 4101, Level = LogLevel.Information, Message = "Wrote {Count} usage totals held while Redis was unreachable")]
    private static partial void LogFlushed(ILogger logger, int count);
}
