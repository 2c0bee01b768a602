using ModelGateway.Configuration;
using ModelGateway.Providers;

namespace ModelGateway.Routing.Signals;

/// <summary>
/// <c>deployments[].metrics</c> as the routing file states it: where a self-hosted server (vLLM, TGI,
/// SGLang, Ollama behind an OpenAI-compatible endpoint) reports its own load in Prometheus text format.
/// </summary>
public sealed class MetricsDocument
{
    public string? Url { get; set; }
    public string? Interval { get; set; }
    public int? MaxQueue { get; set; }
}

/// <summary>Compiled <c>metrics</c> of one deployment: what the <see cref="LoadScraper"/> scrapes and the router reads against.</summary>
internal sealed record LoadMetricsSettings(Uri Url, TimeSpan Interval, int MaxQueue)
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(2);

    /// <summary>KV-cache use at or above which a server is treated as queueing: new requests would wait for blocks.</summary>
    public const double KvSaturated = 0.98;

    /// <summary>How long a reading counts: three intervals, so one failed scrape does not drop it, three do.</summary>
    public TimeSpan StaleAfter => Interval * 3;

    /// <summary>Checks and compiles the document; adds errors and returns null when it is not usable.</summary>
    internal static LoadMetricsSettings? Build(MetricsDocument? doc, string? providerKind, string path, List<ConfigError> errors)
    {
        if (doc is null)
        {
            return null;
        }

        var ok = true;
        if (providerKind is not null && providerKind != ProviderKinds.OpenAICompatible)
        {
            errors.Add(new(path, $"only self-hosted servers report their load: metrics needs a provider of kind {ProviderKinds.OpenAICompatible} (vLLM, TGI, SGLang, Ollama), not {providerKind}"));
            ok = false;
        }

        if (string.IsNullOrWhiteSpace(doc.Url) || !Uri.TryCreate(doc.Url, UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            errors.Add(new(path + ".url", "required: an absolute http(s) URL of the server's Prometheus endpoint, e.g. http://vllm-0:8000/metrics"));
            url = null;
            ok = false;
        }

        var interval = DefaultInterval;
        if (doc.Interval is not null)
        {
            if (!Durations.TryParse(doc.Interval, out interval) || interval < TimeSpan.FromMilliseconds(100))
            {
                errors.Add(new(path + ".interval", $"'{doc.Interval}' is not a duration of at least 100ms (e.g. 500ms, 2s)"));
                ok = false;
            }
        }

        if (doc.MaxQueue is < 0)
        {
            errors.Add(new(path + ".maxQueue", "must not be negative (0 avoids any queueing)"));
            ok = false;
        }

        return ok ? new LoadMetricsSettings(url!, interval, doc.MaxQueue ?? 0) : null;
    }
}
