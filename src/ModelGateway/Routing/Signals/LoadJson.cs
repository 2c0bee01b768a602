using System.Text.Json;
using ModelGateway.Configuration;

namespace ModelGateway.Routing.Signals;

/// <summary>A deployment's load reading as <c>/v1/route/explain</c> and the live page (<c>/dashboard/api/state</c>) show it.</summary>
internal static class LoadJson
{
    /// <summary>Writes <c>"load": {...}</c> for a deployment with <c>metrics</c>; nothing for one without.</summary>
    public static void Write(Utf8JsonWriter json, Deployment deployment, DateTimeOffset now)
    {
        if (deployment.Metrics is not { } settings)
        {
            return;
        }

        var signal = deployment.State.Load;
        json.WriteStartObject("load");
        if (signal.FreshAt(now, settings) is { } reading)
        {
            json.WriteString("status", LoadSignal.IsQueueing(reading, settings) ? "queueing" : "ok");
            json.WriteNumber("waiting", reading.Waiting);
            json.WriteNumber("running", reading.Running);
            if (reading.KvUsage is { } kv)
            {
                json.WriteNumber("kv_cache_usage", Math.Round(kv, 4));
            }
            else
            {
                json.WriteNull("kv_cache_usage");
            }

            json.WriteNumber("age_seconds", Math.Round(Math.Max(0, now.ToUnixTimeMilliseconds() - reading.ScrapedAtUnixMs) / 1000.0, 1));
            json.WriteString("summary", LoadSignal.Describe(reading, now, settings));
        }
        else
        {
            // Stale or never scraped: routing ignores it and falls back to in-flight counts.
            json.WriteString("status", "stale");
            json.WriteString("summary", signal.Reading is null ? "no reading yet" : "stale: last scrape older than three intervals; ignored");
        }

        json.WriteNumber("max_queue", settings.MaxQueue);
        json.WriteNumber("failed_scrapes", signal.ConsecutiveFailures);
        json.WriteEndObject();
    }
}
