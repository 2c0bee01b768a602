using System.Collections.Frozen;
using ModelGateway.Canonical;
using ModelGateway.Providers;
using ModelGateway.Resilience;
using ModelGateway.Routing;
using Polly;

namespace ModelGateway.Configuration;

/// <summary>
/// One validated, immutable version of the routing file, ready to serve. A reload builds a new
/// catalog and swaps it in whole; requests in flight keep the catalog they started with.
/// </summary>
internal sealed class GatewayCatalog
{
    public required int Version { get; init; }
    public required string Source { get; init; }
    public required string ContentHash { get; init; }
    public required DateTimeOffset LoadedAt { get; init; }
    public required FrozenDictionary<string, ProviderEndpoint> Providers { get; init; }
    public required FrozenDictionary<string, Deployment> Deployments { get; init; }
    public required FrozenDictionary<string, ModelRoute> Routes { get; init; }

    /// <summary>Deployments in file order, for listings that should read like the file.</summary>
    public required Deployment[] DeploymentList { get; init; }

    /// <summary>Routes in file order, with the implicit <c>auto</c> route last when the file has none.</summary>
    public required ModelRoute[] RouteList { get; init; }

    public FrozenDictionary<string, ModelRoute>.AlternateLookup<ReadOnlySpan<char>> RouteLookup { get; init; }

    /// <summary>Files that <c>file:</c> secrets were read from; rewriting one (a key rotation) reloads the catalog.</summary>
    public string[] SecretFiles { get; init; } = [];

    public bool TryGetRoute(ReadOnlySpan<char> model, out ModelRoute route) => RouteLookup.TryGetValue(model, out route!);
}

/// <summary>Where the hardware runs: self-hosted, a cloud platform's managed endpoint, or a vendor's API.</summary>
internal enum DeploymentTier
{
    Iaas,
    Paas,
    Saas,
}

/// <summary>What a deployment can do; requests needing more are routed elsewhere.</summary>
[Flags]
internal enum Capabilities
{
    None = 0,
    Chat = 1,
    Completions = 2,
    Embeddings = 4,
    Tools = 8,
    Vision = 16,
    JsonSchema = 32,
    Prefill = 64,

    // The OpenAI endpoints forwarded as they are (Endpoints/ForwardedEndpoints.cs): declared per deployment.
    Images = 128,
    Audio = 256,
    Moderations = 512,
    Files = 1024,
    Batches = 2048,
}

/// <summary>How a deployment's input is counted before it is sent (see docs/routing.md).</summary>
internal enum TokenizerKind
{
    /// <summary>OpenAI's o200k_base (GPT-4o, GPT-4.1, o-series, GPT-5): exact.</summary>
    O200k,

    /// <summary>OpenAI's cl100k_base (GPT-4, GPT-3.5, text-embedding-3): exact.</summary>
    Cl100k,

    /// <summary>Other model families: the cl100k count plus a 15% margin.</summary>
    Other,

    /// <summary>The UTF-8 byte count: a strict upper bound for any byte-level tokenizer.</summary>
    Bytes,
}

/// <summary>A credential resolved from the routing file. Its text never leaves the process.</summary>
internal sealed class Secret(string value)
{
    public string Value { get; } = value;

    public override string ToString() => "***";
}

/// <summary>A compiled provider entry: endpoint, credential, its kind's settings and the adapter that speaks its protocol.</summary>
internal sealed class ProviderEndpoint
{
    public required string Name { get; init; }

    /// <summary>The routing file's kind name (<see cref="ProviderKinds"/>).</summary>
    public required string Kind { get; init; }

    public required IProviderAdapterFactory Factory { get; init; }
    public required DeploymentTier Tier { get; init; }
    public required Uri? BaseUri { get; init; }
    public required Secret? ApiKey { get; init; }
    public required string? Region { get; init; }
    public required string[] Tags { get; init; }
    public required KeyValuePair<string, Secret>[] ExtraHeaders { get; init; }
    public required TimeSpan ConnectTimeout { get; init; }
    public required SimulationSettings? Simulation { get; init; }

    /// <summary>The kind's own compiled settings (API version, project, region credentials...), or null.</summary>
    public object? Settings { get; init; }

    public IProviderAdapter Adapter { get; set; } = null!;

    /// <summary>The kind's settings, typed; only the kind's own adapter asks for them.</summary>
    public T SettingsAs<T>()
        where T : class => Settings as T ?? throw new InvalidOperationException($"provider '{Name}' has no {typeof(T).Name}");

    // Client URLs (issue 22, Providers/Media): what the gateway may fetch for its deployments by default.
    public Providers.Media.MediaFetchPolicy? MediaFetch { get; init; }
    /// <summary>Resilience: how the deployments of this provider are probed while their circuit is open.</summary>
    public ProbeSettings Probe { get; init; } = ProbeSettings.Default;
}

/// <summary>A provider's limit in its own terms: at most <paramref name="Count"/> in any <paramref name="WindowSeconds"/> seconds.</summary>
internal readonly record struct WindowLimit(long Count, int WindowSeconds)
{
    public const int MaxWindowSeconds = 3600;
}

/// <summary>A compiled deployment: one model on one provider, with its economics and live state.</summary>
internal sealed class Deployment
{
    public required string Name { get; init; }
    public required int Index { get; init; }
    public required ProviderEndpoint Provider { get; init; }
    public required string UpstreamModel { get; init; }

    /// <summary>The upstream model id as a JSON string literal, spliced into request bodies without re-serializing.</summary>
    public required byte[] UpstreamModelJson { get; init; }

    public required int? ContextWindow { get; init; }
    public required int? MaxOutputTokens { get; init; }

    /// <summary>The model catalog's row this deployment inherits figures from, or null.</summary>
    public string? KnownModel { get; init; }

    /// <summary>Where each figure came from: the routing file or the model catalog (with the catalog's basis and date).</summary>
    public IReadOnlyDictionary<string, string> FigureSources { get; init; } = new Dictionary<string, string>();

    /// <summary>The output limit sent when a client names none and the provider requires one (Anthropic).</summary>
    public int DefaultMaxTokens { get; init; } = 4096;

    public required Pricing Pricing { get; init; }
    public required Capabilities Capabilities { get; init; }
    public required int? Capacity { get; init; }
    /// <summary>The provider's request limit (<c>rpm</c>, or <c>requests: "60 per 10s"</c>), held across replicas.</summary>
    public required WindowLimit? RequestLimit { get; init; }

    /// <summary>The provider's token limit (<c>tpm</c>, or <c>tokens: "100000 per 1m"</c>): input estimate plus max_tokens, corrected by usage.</summary>
    public required WindowLimit? TokenLimit { get; init; }

    /// <summary>Quotas: read the provider's quota headers and learn from its 429s (<c>quotas.learn</c>).</summary>
    public bool QuotaLearn { get; init; } = true;
    public required string? Region { get; init; }
    public required string[] Tags { get; init; }
    public required TokenizerKind Tokenizer { get; init; }
    public required bool StreamUsage { get; init; }
    public required TimeSpan? FirstTokenTimeout { get; init; }
    public required TimeSpan? IdleTimeout { get; init; }
    public required TimeSpan LatencyWindow { get; init; }

    /// <summary>Half-life of a TTFT sample's weight in the decayed estimate that route objectives use.</summary>
    public TimeSpan LatencyHalfLife { get; init; } = Routing.Objectives.LiveTtft.DefaultHalfLife;

    public required CircuitBreakerSettings CircuitBreaker { get; init; }
    public required SimulationSettings? Simulation { get; init; }

    /// <summary>Live load signals (issue 18): where the server reports its queue, or null.</summary>
    public Routing.Signals.LoadMetricsSettings? Metrics { get; init; }

    /// <summary>Live state (in-flight count, latency window, circuit). Survives reloads while the name does.</summary>
    public DeploymentState State { get; set; } = null!;

    public DeploymentTier Tier => Provider.Tier;

    public bool Has(Capabilities needed) => (Capabilities & needed) == needed;

    // Client URLs (issue 22, Providers/Media).

    /// <summary>Whether the provider takes image and document URLs as they are; false: it needs the bytes.</summary>
    public bool TakesMediaUrls { get; init; } = true;

    /// <summary>For a deployment that needs bytes: what the gateway may fetch for it. Null: nothing, ever.</summary>
    public Providers.Media.MediaFetchPolicy? MediaFetch { get; init; }
    /// <summary>Resilience: the model catalog marks the model as one that reasons before it writes, so its first token may take minutes.</summary>
    public bool IsReasoningModel { get; init; }
}

/// <summary>
/// Prices in USD per token (converted from the file's per-million figures). Cache reads, cache writes
/// and reasoning have their own prices where the provider charges differently; unset, they cost what
/// plain input (reads, writes) or output (reasoning) costs.
/// </summary>
internal readonly record struct Pricing(double InputPerToken, double OutputPerToken, double CacheReadPerToken, double PerHour)
{
    /// <summary>Prompt-cache writes (Anthropic charges 1.25× input for 5-minute writes).</summary>
    public double CacheWritePerToken { get; init; } = InputPerToken;

    /// <summary>Reasoning tokens, where a provider prices them apart from output.</summary>
    public double ReasoningPerToken { get; init; } = OutputPerToken;

    public bool IsHourly => PerHour > 0 && InputPerToken == 0 && OutputPerToken == 0;

    public double Cost(in TokenUsage usage)
        => (usage.UncachedInput * InputPerToken)
           + (usage.CacheRead * CacheReadPerToken)
           + (usage.CacheWrite * CacheWritePerToken)
           + (Math.Max(0, usage.Output - usage.Reasoning) * OutputPerToken)
           + (usage.Reasoning * ReasoningPerToken);

    /// <summary>An estimate before the answer: no cache hits assumed, reasoning at the output price.</summary>
    public double Cost(long inputTokens, long outputTokens) => (inputTokens * InputPerToken) + (outputTokens * OutputPerToken);
}

/// <summary>How to pick among a route's deployments.</summary>
internal enum RoutingStrategyKind
{
    Priority,
    Weighted,
    Cost,
    Latency,
    LeastBusy,
    Balanced,
}

/// <summary>Which latency an objective measures.</summary>
internal enum LatencyMetric
{
    Ttft,
    Duration,
}

/// <summary>A compiled latency objective.</summary>
internal sealed record SloSettings(LatencyMetric Metric, int Percentile, TimeSpan Target, bool AllowRequestOverride)
{
    /// <summary>Set when the route states a whole objective (<c>objective:</c>): decayed estimates, predicted TTFT, probes, a cost cap.</summary>
    public Routing.Objectives.ObjectiveSettings? Objective { get; init; }
}

/// <summary>A compiled route: the public model name and how its deployments are chosen and retried.</summary>
internal sealed class ModelRoute
{
    public required string Name { get; init; }
    public required string? Description { get; init; }
    public required RoutingStrategyKind Strategy { get; init; }
    public required string StrategyName { get; init; }
    public required Deployment[] Targets { get; init; }
    public required double[] Weights { get; init; }
    public required SloSettings? Slo { get; init; }
    public required double CostWeight { get; init; }
    public required double LatencyWeight { get; init; }
    public required double Exploration { get; init; }
    public required int ExpectedOutputTokens { get; init; }
    public required DeploymentTier[]? AllowedTiers { get; init; }
    public required string[]? AllowedRegions { get; init; }
    public required string[]? RequiredTags { get; init; }
    public required RouteResilience Resilience { get; init; }

    /// <summary>True for <c>auto</c> when the file does not list its targets: every deployment is a candidate.</summary>
    public required bool IsAuto { get; init; }

    /// <summary>Context window and abilities summed over targets, advertised by <c>/v1/models</c>.</summary>
    public int? MaxContextWindow { get; init; }
    public Capabilities Capabilities { get; init; }

    /// <summary>Per-route counters that spread ties and pace exploration.</summary>
    public RouteCounters Counters { get; } = new();

    /// <summary>The route's Polly pipeline (failover retry, or hedging), built once per catalog.</summary>
    public ResiliencePipeline<AttemptOutcome> Pipeline { get; set; } = null!;

    /// <summary>Resilience: retries on the same deployment per target, aligned with <see cref="Targets"/>; null when every target takes the route's default.</summary>
    public int[]? TargetRetries { get; init; }

    /// <summary>How often <paramref name="deployment"/> is tried again before the route fails over from it.</summary>
    public int RetriesFor(Deployment deployment)
    {
        if (TargetRetries is { } retries)
        {
            for (var i = 0; i < Targets.Length; i++)
            {
                if (ReferenceEquals(Targets[i], deployment))
                {
                    return retries[i];
                }
            }
        }

        return Resilience.Retries;
    }

    /// <summary>Caching: the route's response cache; null when it is off.</summary>
    public Caching.CacheSettings? Cache { get; set; }

    /// <summary>Prefix affinity: the route's settings; null when it is off.</summary>
    public Routing.Affinity.AffinitySettings? Affinity { get; set; }
}

/// <summary>Compiled failover, retry, hedging and timeout settings of a route.</summary>
internal sealed record RouteResilience(
    int MaxAttempts,
    TimeSpan Backoff,
    TimeSpan MaxBackoff,
    TimeSpan FirstTokenTimeout,
    TimeSpan ResponseTimeout,
    TimeSpan IdleTimeout,
    TimeSpan TotalTimeout,
    TimeSpan KeepAliveInterval,
    HedgingSettings? Hedging,
    bool Continuation)
{
    /// <summary>Tries on the same deployment after a transient failure, before failing over (targets may set their own).</summary>
    public int Retries { get; init; }

    /// <summary>The longest <c>Retry-After</c> (or cool-down) a retry on the same deployment waits for; a longer one fails over at once.</summary>
    public TimeSpan MaxRetryAfter { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The first-token deadline of deployments the model catalog marks as reasoning models, which think before they write.</summary>
    public TimeSpan ReasoningFirstTokenTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Whether the route itself set <see cref="FirstTokenTimeout"/>: then it applies to reasoning models too.</summary>
    public bool FirstTokenTimeoutSet { get; init; }
}

/// <summary>Compiled hedging settings.</summary>
internal sealed record HedgingSettings(TimeSpan Delay, int MaxAttempts);

/// <summary>Compiled circuit-breaker settings of one deployment.</summary>
internal sealed record CircuitBreakerSettings(
    double FailureRatio,
    int MinimumThroughput,
    TimeSpan SamplingDuration,
    int ConsecutiveFailures,
    TimeSpan BreakDuration)
{
    /// <summary>The longest break: each failed recovery test doubles the break, up to this.</summary>
    public TimeSpan MaxBreakDuration { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>Compiled health-probe settings of a provider: a cheap request every interval (± jitter) while a circuit is open.</summary>
internal sealed record ProbeSettings(bool Enabled, TimeSpan Interval, TimeSpan Jitter, TimeSpan Timeout)
{
    // One cheap probe a second per open circuit and replica: a deployment back from an outage serves again within
    // about 1.5 s instead of 6 s, while traffic it would have taken runs on a dearer fallback meanwhile.
    public static readonly ProbeSettings Default = new(true, TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(10));
}

/// <summary>Compiled behaviour of a simulated deployment.</summary>
internal sealed record SimulationSettings(
    TimeSpan Ttft,
    double TokensPerSecond,
    int OutputTokens,
    double ErrorRate,
    int ErrorStatus,
    int? Concurrency,
    int EmbeddingDimensions,
    OutageWindow[] Outages,
    bool TakesMediaUrls = true);

/// <summary>A scheduled outage: a fixed window, or a repeating one (<c>every</c>/<c>for</c>/<c>offset</c>).</summary>
internal sealed record OutageWindow(DateTimeOffset? From, DateTimeOffset? Until, TimeSpan? Every, TimeSpan? Duration, TimeSpan Offset, int Status)
{
    public bool IsActive(DateTimeOffset now)
    {
        if (Every is { } every && Duration is { } duration)
        {
            var phase = (now.ToUnixTimeMilliseconds() - (long)Offset.TotalMilliseconds) % (long)every.TotalMilliseconds;
            if (phase < 0)
            {
                phase += (long)every.TotalMilliseconds;
            }

            return phase < duration.TotalMilliseconds;
        }

        return (From is null || now >= From) && (Until is null || now < Until);
    }
}
