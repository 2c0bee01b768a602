using ModelGateway.Configuration;

namespace ModelGateway.Routing.Objectives;

/// <summary>Compiles and validates a route's <c>objective:</c> and a deployment's <c>latencyHalfLife</c>, reporting every error with its path.</summary>
internal static class ObjectiveConfig
{
    /// <summary>The shortest probe interval and half-life accepted: below it probes would be traffic of their own.</summary>
    public static readonly TimeSpan Shortest = TimeSpan.FromMilliseconds(100);

    public static SloSettings? Parse(ObjectiveDocument doc, bool hasSlo, string path, List<ConfigError> errors)
    {
        if (hasSlo)
        {
            errors.Add(new(path, "set either slo or objective, not both (objective is slo's successor: ttft, percentile, maxCostPer1k, probeInterval)"));
        }

        var target = Duration(doc.Ttft, path + ".ttft", errors, required: true, TimeSpan.FromMilliseconds(1));
        var percentile = doc.Percentile ?? 99;
        if (percentile is not (50 or 90 or 95 or 99))
        {
            errors.Add(new(path + ".percentile", "must be 50, 90, 95 or 99"));
        }

        if (doc.MaxCostPer1k is <= 0)
        {
            errors.Add(new(path + ".maxCostPer1k", "must be more than 0 (USD per 1,000 requests)"));
        }

        var probeInterval = Duration(doc.ProbeInterval, path + ".probeInterval", errors, required: false, Shortest) ?? ObjectiveSettings.DefaultProbeInterval;
        if (target is null)
        {
            return null;
        }

        return new SloSettings(LatencyMetric.Ttft, percentile, target.Value, doc.AllowRequestOverride ?? true)
        {
            Objective = new ObjectiveSettings
            {
                Percentile = percentile,
                MaxCostPer1k = doc.MaxCostPer1k is { } cap ? (double)cap : null,
                ProbeInterval = probeInterval,
            },
        };
    }

    public static TimeSpan ParseHalfLife(string? text, string path, List<ConfigError> errors)
        => Duration(text, path, errors, required: false, Shortest) ?? LiveTtft.DefaultHalfLife;

    private static TimeSpan? Duration(string? text, string path, List<ConfigError> errors, bool required, TimeSpan shortest)
    {
        if (text is null)
        {
            if (required)
            {
                errors.Add(new(path, "is required (e.g. 800ms)"));
            }

            return null;
        }

        if (!Durations.TryParse(text, out var value))
        {
            errors.Add(new(path, $"'{text}' is not a duration (e.g. 800ms, 5s)"));
            return null;
        }

        if (value < shortest)
        {
            errors.Add(new(path, "must be at least " + Durations.Format(shortest)));
            return null;
        }

        return value;
    }
}
