using System.Globalization;
using StackExchange.Redis;

namespace ModelGateway.State.Redis;

/// <summary>
/// Limit flags of a key, one character each as the scripts read them: RPM, TPM, parallel requests,
/// daily budget, monthly budget ('1' = the key has that limit).
/// </summary>
internal static class LimitFlags
{
    private static readonly string[] All = [.. Enumerable.Range(0, 32).Select(static mask => string.Concat(Enumerable.Range(0, 5).Select(bit => (mask & (1 << bit)) != 0 ? '1' : '0')))];

    public static string Of(CallerIdentity caller) => All[
        (caller.RpmLimit is not null ? 1 : 0)
        | (caller.TpmLimit is not null ? 2 : 0)
        | (caller.MaxParallelRequests is not null ? 4 : 0)
        | (caller.DailyBudgetUsd is not null ? 8 : 0)
        | (caller.MonthlyBudgetUsd is not null ? 16 : 0)];
}

/// <summary>How a settle finds its admission: answered, or timed out and then served or refused.</summary>
internal enum SettleMode
{
    /// <summary>The admission's answer came back: correct its reservation to what was used.</summary>
    Confirmed,

    /// <summary>The admission timed out and the request was served locally: correct it if it was applied, else count the request now.</summary>
    ServedUncertain,

    /// <summary>The admission timed out and the request was refused: undo it if it was applied.</summary>
    RefusedUncertain,
}

/// <summary>One request's settle, as the settle script reads it, plus what to release locally once Redis has it.</summary>
internal sealed record SettleRecord(string OperationId, SettleMode Mode, long Tokens, double Cost, string Flags, double LocalCost = 0, string? Day = null, string? Month = null)
{
    public const int Width = 5;

    public void Write(RedisValue[] args, ref int at)
    {
        args[at++] = OperationId;
        args[at++] = Mode switch { SettleMode.Confirmed => "c", SettleMode.ServedUncertain => "u", _ => "x" };
        args[at++] = Tokens;
        args[at++] = Cost.ToString("R", CultureInfo.InvariantCulture);
        args[at++] = Flags;
    }
}

/// <summary>
/// What a key used on this replica while Redis was unreachable (fail-open): requests and tokens per
/// second, spend per day and month. Accumulates until it is sent; from then on it has an id and never
/// changes, so sending it again (after a timeout) is recognised by Redis as a repeat.
/// </summary>
internal sealed class OutageBatch
{
    public string? Id { get; private set; }

    public string Flags { get; set; } = "00000";

    public Dictionary<long, (long Requests, long Tokens)> Seconds { get; } = [];

    public Dictionary<string, double> Days { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, double> Months { get; } = new(StringComparer.Ordinal);

    public long Requests { get; private set; }

    public void Add(long second, long tokens, double cost, string day, string month)
    {
        Seconds[second] = Seconds.TryGetValue(second, out var bucket) ? (bucket.Requests + 1, bucket.Tokens + tokens) : (1, tokens);
        Days[day] = Days.GetValueOrDefault(day) + cost;
        Months[month] = Months.GetValueOrDefault(month) + cost;
        Requests++;
    }

    /// <summary>Fixes the batch under an id. Seconds that already left every window are dropped: only spend outlives a minute.</summary>
    public void Seal(string id, long now)
    {
        Id = id;
        foreach (var second in Seconds.Keys)
        {
            if (second <= now - SlidingWindow.Seconds)
            {
                Seconds.Remove(second);
            }
        }
    }

    public int Width => 2 + 1 + (3 * Seconds.Count) + 1 + (2 * Days.Count) + 1 + (2 * Months.Count);

    public void Write(RedisValue[] args, ref int at)
    {
        args[at++] = Id;
        args[at++] = Flags;
        args[at++] = Seconds.Count;
        foreach (var (second, bucket) in Seconds)
        {
            args[at++] = second;
            args[at++] = bucket.Requests;
            args[at++] = bucket.Tokens;
        }

        args[at++] = Days.Count;
        foreach (var (day, cost) in Days)
        {
            args[at++] = day;
            args[at++] = cost.ToString("R", CultureInfo.InvariantCulture);
        }

        args[at++] = Months.Count;
        foreach (var (month, cost) in Months)
        {
            args[at++] = month;
            args[at++] = cost.ToString("R", CultureInfo.InvariantCulture);
        }
    }
}

/// <summary>
/// A key's writes waiting to reach Redis: settles of finished requests and outage batches. Taken whole
/// by whoever sends them (the key's next admission, the settle timer, a reconnect), then retired; what
/// could not be sent is put back into the key's next one.
/// </summary>
internal sealed class PendingWrites
{
    public List<SettleRecord> Records { get; } = new(4);

    /// <summary>Sealed batches that have not been acknowledged, then at most one still accumulating (no id).</summary>
    public List<OutageBatch> Batches { get; } = [];

    public bool Taken { get; set; }

    public OutageBatch Accumulating()
    {
        if (Batches.Count > 0 && Batches[^1].Id is null)
        {
            return Batches[^1];
        }

        var batch = new OutageBatch();
        Batches.Add(batch);
        return batch;
    }

    public int Width
    {
        get
        {
            var width = 1 + (SettleRecord.Width * Records.Count) + 1;
            foreach (var batch in Batches)
            {
                width += batch.Width;
            }

            return width;
        }
    }

    /// <summary>Writes the settles, then the batches, as the scripts read them.</summary>
    public static void Write(PendingWrites? pending, RedisValue[] args, int at)
    {
        args[at++] = pending?.Records.Count ?? 0;
        if (pending is not null)
        {
            foreach (var record in pending.Records)
            {
                record.Write(args, ref at);
            }
        }

        args[at++] = pending?.Batches.Count ?? 0;
        if (pending is not null)
        {
            foreach (var batch in pending.Batches)
            {
                batch.Write(args, ref at);
            }
        }
    }
}

/// <summary>
/// A budgeted key's spend as this replica knows it: what Redis said at the last answer, and what this
/// replica admitted locally since (fail-open) that Redis has not acknowledged yet. While Redis is
/// unreachable the key may spend, on this replica, its share of what was left of the budget.
/// </summary>
internal sealed class KeyBooks
{
    private readonly Dictionary<string, double> _localDays = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _localMonths = new(StringComparer.Ordinal);
    private string _knownDay = string.Empty;
    private string _knownMonth = string.Empty;
    private double _knownDaySpend;
    private double _knownMonthSpend;

    public void Known(string day, string month, double daySpend, double monthSpend)
    {
        lock (this)
        {
            (_knownDay, _knownMonth, _knownDaySpend, _knownMonthSpend) = (day, month, daySpend, monthSpend);
        }
    }

    /// <summary>
    /// Whether a local admission may spend more: the key's local spend for the period stays under
    /// <c>(budget - spend last read from Redis) × share</c>. Reserves <paramref name="estimate"/> when it may.
    /// </summary>
    public string? TryReserve(CallerIdentity caller, string day, string month, double estimate, double share)
    {
        lock (this)
        {
            if (caller.DailyBudgetUsd is { } daily
                && _localDays.GetValueOrDefault(day) >= (daily - (_knownDay == day ? _knownDaySpend : 0)) * share)
            {
                return "budget_daily";
            }

            if (caller.MonthlyBudgetUsd is { } monthly
                && _localMonths.GetValueOrDefault(month) >= (monthly - (_knownMonth == month ? _knownMonthSpend : 0)) * share)
            {
                return "budget_monthly";
            }

            Add(day, month, estimate);
            return null;
        }
    }

    /// <summary>Adds local spend (a correction when negative) for a day and month.</summary>
    public void Add(string day, string month, double amount)
    {
        lock (this)
        {
            _localDays[day] = _localDays.GetValueOrDefault(day) + amount;
            _localMonths[month] = _localMonths.GetValueOrDefault(month) + amount;
        }
    }

    /// <summary>Redis has this spend now (the answer that acknowledged it also carried the new total).</summary>
    public void Confirmed(string? day, string? month, double amount)
    {
        lock (this)
        {
            if (day is not null)
            {
                Release(_localDays, day, amount);
            }

            if (month is not null)
            {
                Release(_localMonths, month, amount);
            }
        }
    }

    private static void Release(Dictionary<string, double> periods, string period, double amount)
    {
        var left = periods.GetValueOrDefault(period) - amount;
        if (Math.Abs(left) < 1e-12)
        {
            periods.Remove(period);
        }
        else
        {
            periods[period] = left;
        }
    }
}

/// <summary>The operation ids of requests this replica is serving for one key, whose leases it renews.</summary>
internal sealed class LeaseSet
{
    private readonly HashSet<string> _ids = new(StringComparer.Ordinal);

    public void Add(string id)
    {
        lock (_ids)
        {
            _ids.Add(id);
        }
    }

    public void Remove(string id)
    {
        lock (_ids)
        {
            _ids.Remove(id);
        }
    }

    public string[] Snapshot()
    {
        lock (_ids)
        {
            return _ids.Count == 0 ? [] : [.. _ids];
        }
    }
}
