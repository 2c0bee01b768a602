using System.Globalization;
using System.Text.Json;
using ModelGateway.Configuration;

namespace ModelGateway.Routing.Objectives;

/// <summary>
/// One deployment's live TTFT estimate at an objective's percentile, and the TTFT predicted for a request
/// sent now: the decayed estimate (raised to the age of the oldest attempt still waiting for its first byte,
/// a late sample already), plus queueing delay when the requests ahead of it exceed the deployment's capacity.
/// </summary>
internal readonly record struct LiveEstimate(
    int Percentile,
    double EstimateMs,
    double Samples,
    double OldestWaitMs,
    double PredictedMs,
    int InFlight,
    int? Capacity,
    int QueuedUpstream,
    TtftDistribution Distribution)
{
    public bool IsKnown => !double.IsNaN(PredictedMs);

    public static LiveEstimate Of(Deployment deployment, int percentile, long now)
    {
        var state = deployment.State;
        var live = state.Latency.Live;
        var distribution = live.DistributionAt(now);
        var estimate = distribution.Quantile(percentile);
        var waited = live.OldestWaitMs(now);

        // Censored: an attempt waiting longer than the estimate says the estimate is at least that already.
        var late = waited > 0 && (double.IsNaN(estimate) || waited > estimate);
        var current = late ? waited : estimate;
        var inFlight = state.InFlight;
        var queued = live.QueuedUpstream(now);
        var predicted = current;
        if (deployment.Capacity is { } capacity && capacity > 0 && !double.IsNaN(current))
        {
            // Requests that must leave a slot before this one gets one, each slot freeing after about a request's duration.
            var ahead = inFlight + queued + 1 - capacity;
            if (ahead > 0)
            {
                var service = state.Latency.EwmaDurationMs;
                predicted = current + (ahead / (double)capacity * (double.IsNaN(service) ? current : service));
            }
        }

        return new LiveEstimate(percentile, current, distribution.Weight, waited, predicted, inFlight, deployment.Capacity, queued, distribution);
    }

    /// <summary><c>p99 ttft est 640ms (decayed, 37 samples), predicted 910ms at 15/16 in flight</c>.</summary>
    public string Describe()
    {
        var text = string.Create(CultureInfo.InvariantCulture, $"p{Percentile} ttft est {Ms(EstimateMs)} (decayed, {Math.Round(Samples, Samples < 10 ? 1 : 0)} samples)");
        if (OldestWaitMs >= EstimateMs && OldestWaitMs > 0)
        {
            text += string.Create(CultureInfo.InvariantCulture, $", oldest still waiting {Ms(OldestWaitMs)}");
        }

        var load = Capacity is { } capacity ? string.Create(CultureInfo.InvariantCulture, $"{InFlight}/{capacity}") : InFlight.ToString(CultureInfo.InvariantCulture);
        text += $", predicted {Ms(PredictedMs)} at {load} in flight";
        return QueuedUpstream > 0 ? text + string.Create(CultureInfo.InvariantCulture, $", {QueuedUpstream} queued upstream") : text;
    }

    /// <summary>Writes the estimate as a JSON object named <paramref name="name"/>, for explain and the live page.</summary>
    public void Write(Utf8JsonWriter json, string name, double targetMs = double.NaN)
    {
        json.WriteStartObject(name);
        json.WriteString("text", Describe());
        json.WriteNumber("percentile", Percentile);
        WriteMs(json, "ttft_estimate_ms", EstimateMs);
        json.WriteNumber("samples", Math.Round(Samples, 2));
        WriteMs(json, "oldest_waiting_ms", OldestWaitMs);
        WriteMs(json, "predicted_ttft_ms", PredictedMs);
        json.WriteNumber("in_flight", InFlight);
        if (Capacity is { } capacity)
        {
            json.WriteNumber("capacity", capacity);
        }
        else
        {
            json.WriteNull("capacity");
        }

        json.WriteNumber("queued_upstream", QueuedUpstream);
        if (!double.IsNaN(targetMs))
        {
            json.WriteNumber("miss_probability", Math.Round(Distribution.MissProbability(targetMs), 4));
        }

        json.WriteEndObject();
    }

    private static void WriteMs(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsNaN(value))
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteNumber(name, Math.Round(value, 1));
        }
    }

    private static string Ms(double ms) => double.IsNaN(ms) ? "unknown" : string.Create(CultureInfo.InvariantCulture, $"{Math.Round(ms)}ms");
}
