using System.Diagnostics.Metrics;
using ModelGateway.Observability;

namespace ModelGateway.State;

/// <summary>
/// Metrics of the shared state store: how long requests wait on it, commands that ran past
/// <c>State:CommandTimeout</c>, outage bookkeeping reconciled, and data the store lost.
/// </summary>
internal sealed class StateMetrics
{
    private readonly Histogram<double>? _wait;
    private readonly Counter<long>? _timeouts;
    private readonly Counter<long>? _reconciled;
    private readonly Counter<long>? _dataLoss;

    public StateMetrics(IMeterFactory? meterFactory, StateOptions options)
    {
        if (meterFactory is null)
        {
            return;
        }

        var meter = meterFactory.Create(GatewayMetrics.MeterName);

        // The documented bound (CommandTimeout + WaitMargin) is a bucket edge, so a scrape shows
        // directly whether any request waited longer.
        var timeout = options.CommandTimeout.TotalSeconds;
        var bound = (options.CommandTimeout + StateOptions.WaitMargin).TotalSeconds;
        double[] buckets = [.. new[] { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, timeout, bound, 1, 2.5, 5 }.Distinct().Order()];
        _wait = meter.CreateHistogram("modelgateway.state.wait.duration", "s",
            "How long a keyed request waited on the state store before its admission was decided, key lookup included.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets });
        _timeouts = meter.CreateCounter<long>("modelgateway.state.timeouts", "{command}",
            "State-store commands that did not answer within State:CommandTimeout, by operation.");
        _reconciled = meter.CreateCounter<long>("modelgateway.state.reconciled", "{record}",
            "Admissions and outage spend written to the state store after it missed them, by kind.");
        _dataLoss = meter.CreateCounter<long>("modelgateway.state.data_lost", "{event}",
            "Times the state store came back without the gateway's data (restarted without persistence, failed over to a stale replica, or restored).");
    }

    /// <summary>A request's wait on the store, in seconds; <paramref name="operation"/> is admit or key_lookup.</summary>
    public void Waited(string operation, TimeSpan waited)
    {
        if (_wait is { Enabled: true })
        {
            _wait.Record(waited.TotalSeconds, new KeyValuePair<string, object?>("operation", operation));
        }
    }

    public void TimedOut(string operation)
    {
        if (_timeouts is { Enabled: true })
        {
            _timeouts.Add(1, new KeyValuePair<string, object?>("operation", operation));
        }
    }

    public void Reconciled(string kind, long count)
    {
        if (count > 0 && _reconciled is { Enabled: true })
        {
            _reconciled.Add(count, new KeyValuePair<string, object?>("kind", kind));
        }
    }

    public void DataLost() => _dataLoss?.Add(1);
}
