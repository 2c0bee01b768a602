using System.Text.Json;
using System.Text.Json.Serialization;

namespace ModelGateway.Configuration;

// The routing file as admins write it (YAML or JSON). Every member is nullable so that the
// validator, not the deserializer, decides what is missing and reports it with its path.
// Field names here are the file's field names; docs/configuration.md documents each one.

/// <summary>The whole routing file: providers, deployments and the routes that expose them.</summary>
public sealed class RoutingConfigDocument
{
    public DefaultsDocument? Defaults { get; set; }
    public List<ProviderDocument>? Providers { get; set; }
    public List<DeploymentDocument>? Deployments { get; set; }
    public List<RouteDocument>? Routes { get; set; }

    /// <summary>Paths of the values the loader took from the environment (<c>${NAME}</c>); not a field of the file.</summary>
    [JsonIgnore]
    internal IReadOnlySet<string> FromEnvironment { get; set; } = new HashSet<string>();
}

/// <summary>Settings every route and deployment inherits unless it overrides them.</summary>
public sealed class DefaultsDocument
{
    public string? Strategy { get; set; }
    public ResilienceDocument? Resilience { get; set; }
    public CircuitBreakerDocument? CircuitBreaker { get; set; }
    public string? LatencyWindow { get; set; }

    // Resilience: how deployments whose circuit is open are probed, unless a provider says otherwise.
    public ProbeDocument? Probe { get; set; }
}

/// <summary>Where deployments live: an API endpoint and the credential to call it.</summary>
public sealed class ProviderDocument
{
    public string? Name { get; set; }
    public string? Kind { get; set; }
    public string? Tier { get; set; }
    public string? BaseUrl { get; set; }
    public string? ApiKey { get; set; }
    public string? ApiVersion { get; set; }

    /// <summary>Anthropic: <c>anthropic-beta</c> flags sent with every request.</summary>
    public List<string>? Betas { get; set; }
    public string? Region { get; set; }
    public List<string>? Tags { get; set; }
    public Dictionary<string, string>? Headers { get; set; }
    public string? ConnectTimeout { get; set; }
    public SimulationDocument? Simulate { get; set; }

    // Client URLs (issue 22, Providers/Media): the default of this provider's deployments.
    public MediaFetchDocument? MediaFetch { get; set; }
    // Resilience: how this provider's deployments are probed while their circuit is open.
    public ProbeDocument? Probe { get; set; }

    // Vertex AI (kind vertex-ai): where its models live and how the gateway gets OAuth tokens for them.

    /// <summary>vertex-ai: the Google Cloud project id.</summary>
    public string? Project { get; set; }

    /// <summary>vertex-ai: the region (<c>us-central1</c>, <c>europe-west4</c>...) or <c>global</c>.</summary>
    public string? Location { get; set; }

    /// <summary>vertex-ai: a service-account key (<c>file:/path</c> or <c>env:NAME</c>); Application Default Credentials when absent.</summary>
    public string? CredentialsFile { get; set; }

    /// <summary>vertex-ai: <c>google</c> or <c>anthropic</c> for every deployment; by default from the model id (<c>claude*</c> is Anthropic's).</summary>
    public string? Publisher { get; set; }

    // Bedrock: AWS credentials (env:NAME or file:/path secrets) or a shared-config profile; neither means
    // the SDK's default chain. `region` above is the region requests are signed for.

    /// <summary>Bedrock: the access key id of a key pair (with <see cref="SecretAccessKey"/>).</summary>
    public string? AccessKeyId { get; set; }

    /// <summary>Bedrock: the secret access key of a key pair.</summary>
    public string? SecretAccessKey { get; set; }

    /// <summary>Bedrock: the session token of temporary credentials, with the key pair.</summary>
    public string? SessionToken { get; set; }

    /// <summary>Bedrock: a profile of the shared AWS config and credentials files.</summary>
    public string? Profile { get; set; }
}

/// <summary>One model on one provider, with its price, size and abilities.</summary>
public sealed class DeploymentDocument
{
    public string? Name { get; set; }
    public string? Provider { get; set; }
    public string? Model { get; set; }

    /// <summary>The model catalog row to inherit figures from; defaults to <see cref="Model"/>; <c>none</c> opts out.</summary>
    public string? KnownModel { get; set; }
    public int? ContextWindow { get; set; }
    public int? MaxOutputTokens { get; set; }
    public int? DefaultMaxTokens { get; set; }
    public PricingDocument? Pricing { get; set; }
    public List<string>? Capabilities { get; set; }
    public int? Capacity { get; set; }
    public LimitsDocument? Limits { get; set; }

    // Quotas: whether the gateway learns from the provider's quota headers and its 429s.
    public QuotasDocument? Quotas { get; set; }
    public string? Region { get; set; }
    public List<string>? Tags { get; set; }
    public string? Tokenizer { get; set; }
    public bool? StreamUsage { get; set; }
    public string? FirstTokenTimeout { get; set; }
    public string? IdleTimeout { get; set; }
    public string? LatencyWindow { get; set; }

    // Route objectives: half-life of the decayed TTFT estimate.
    public string? LatencyHalfLife { get; set; }
    public CircuitBreakerDocument? CircuitBreaker { get; set; }
    public SimulationDocument? Simulate { get; set; }

    // Live load signals (issue 18): the server's own Prometheus endpoint.
    public Routing.Signals.MetricsDocument? Metrics { get; set; }

    // Client URLs (issue 22, Providers/Media): replaces the provider's mediaFetch as a whole.
    public MediaFetchDocument? MediaFetch { get; set; }
}

/// <summary>Prices in USD per one million tokens, or per hour for a self-hosted server.</summary>
public sealed class PricingDocument
{
    public decimal? Input { get; set; }
    public decimal? Output { get; set; }
    public decimal? CachedInput { get; set; }
    public decimal? CacheRead { get; set; }
    public decimal? CacheWrite { get; set; }
    public decimal? Reasoning { get; set; }
    public decimal? PerHour { get; set; }
}

/// <summary>The provider's own limits for a deployment, so routing avoids collecting 429s.</summary>
public sealed class LimitsDocument
{
    public int? Rpm { get; set; }
    public int? Tpm { get; set; }

    /// <summary>Requests in the provider's own window, e.g. <c>60 per 10s</c> (instead of <see cref="Rpm"/>).</summary>
    public string? Requests { get; set; }

    /// <summary>Tokens in the provider's own window, e.g. <c>100000 per 1m</c> (instead of <see cref="Tpm"/>).</summary>
    public string? Tokens { get; set; }
}

/// <summary>How the gateway treats what the provider says about its quota.</summary>
public sealed class QuotasDocument
{
    /// <summary>Read quota headers and learn from 429s (default true); false: only a 429's own cool-down applies.</summary>
    public bool? Learn { get; set; }
}

/// <summary>A public model name and the deployments that serve it.</summary>
public sealed class RouteDocument
{
    public string? Name { get; set; }
    public string? Description { get; set; }
    public string? Strategy { get; set; }
    [JsonConverter(typeof(RouteTargetListConverter))]
    public List<RouteTargetDocument>? Targets { get; set; }
    public SloDocument? Slo { get; set; }

    // Route objectives: the whole objective (TTFT percentile, cost cap, probes); excludes slo.
    public ObjectiveDocument? Objective { get; set; }
    public BalanceDocument? Balance { get; set; }
    public double? Exploration { get; set; }
    public int? ExpectedOutputTokens { get; set; }
    public ConstraintsDocument? Constraints { get; set; }
    public ResilienceDocument? Resilience { get; set; }

    // Caching: the route's response cache (off when absent).
    public CacheDocument? Cache { get; set; }

    // Prefix affinity (issue 18): requests sharing a long prompt prefix prefer the deployment that served it last.
    public AffinityDocument? Affinity { get; set; }
}

/// <summary>A route target: a deployment name, optionally with a weight.</summary>
public sealed class RouteTargetDocument
{
    public string? Deployment { get; set; }
    public double? Weight { get; set; }

    // Resilience: tries on this deployment after a transient failure, before failing over.
    public int? Retries { get; set; }
}

/// <summary>A latency objective: the cheapest deployment that meets it wins.</summary>
public sealed class SloDocument
{
    public string? Ttft { get; set; }
    public string? Duration { get; set; }
    public int? Percentile { get; set; }
    public bool? AllowRequestOverride { get; set; }
}

/// <summary>A route objective: at least percentile% of first tokens within ttft, cheapest first, at most maxCostPer1k.</summary>
public sealed class ObjectiveDocument
{
    public string? Ttft { get; set; }
    public int? Percentile { get; set; }
    public decimal? MaxCostPer1k { get; set; }
    public string? ProbeInterval { get; set; }
    public bool? AllowRequestOverride { get; set; }
}

/// <summary>Weights of the balanced strategy's score.</summary>
public sealed class BalanceDocument
{
    public double? Cost { get; set; }
    public double? Latency { get; set; }
}

/// <summary>Which deployments a route may use at all.</summary>
public sealed class ConstraintsDocument
{
    public List<string>? Tiers { get; set; }
    public List<string>? Regions { get; set; }
    public List<string>? Tags { get; set; }
}

/// <summary>Failover, retry, hedging and timeout settings of a route.</summary>
public sealed class ResilienceDocument
{
    public int? MaxAttempts { get; set; }
    public string? Backoff { get; set; }
    public string? MaxBackoff { get; set; }
    public string? FirstTokenTimeout { get; set; }
    public string? ResponseTimeout { get; set; }
    public string? IdleTimeout { get; set; }
    public string? TotalTimeout { get; set; }
    public string? KeepAliveInterval { get; set; }
    public HedgingDocument? Hedging { get; set; }
    public bool? Continuation { get; set; }

    // Resilience: retries on the same deployment, the Retry-After ceiling, and reasoning models' first-token deadline.
    public int? Retries { get; set; }
    public string? MaxRetryAfter { get; set; }
    public string? ReasoningFirstTokenTimeout { get; set; }
}

/// <summary>Start a second attempt when the first is slow to produce its first byte.</summary>
public sealed class HedgingDocument
{
    public bool? Enabled { get; set; }

    public string? Delay { get; set; }
    public int? MaxAttempts { get; set; }
}

/// <summary>When a deployment's circuit opens, and for how long.</summary>
public sealed class CircuitBreakerDocument
{
    public double? FailureRatio { get; set; }
    public int? MinimumThroughput { get; set; }
    public string? SamplingDuration { get; set; }
    public int? ConsecutiveFailures { get; set; }
    public string? BreakDuration { get; set; }

    // Resilience: the break doubles after each failed recovery test, up to this.
    public string? MaxBreakDuration { get; set; }
}

/// <summary>How a simulated deployment behaves: speed, length, errors and outages.</summary>
public sealed class SimulationDocument
{
    public string? Ttft { get; set; }
    public double? TokensPerSecond { get; set; }
    public int? OutputTokens { get; set; }
    public double? ErrorRate { get; set; }
    public int? ErrorStatus { get; set; }
    public int? Concurrency { get; set; }
    public int? EmbeddingDimensions { get; set; }
    public List<OutageDocument>? Outages { get; set; }

    // Client URLs (issue 22): false makes the simulated deployment need images inline, like Bedrock or Gemini.
    public bool? TakesMediaUrls { get; set; }
}

/// <summary>A scheduled outage: either a fixed window or a repeating one.</summary>
public sealed class OutageDocument
{
    public string? From { get; set; }
    public string? Until { get; set; }
    public string? Every { get; set; }
    public string? For { get; set; }
    public string? Offset { get; set; }
    public int? Status { get; set; }
}

/// <summary>
/// Whether the gateway may download the image and document URLs clients send, for a deployment whose
/// provider takes only inline content (docs/security.md). Absent: never.
/// </summary>
public sealed class MediaFetchDocument
{
    public bool? Enabled { get; set; }
    public List<string>? AllowedHosts { get; set; }
    public List<int>? AllowedPorts { get; set; }
    public List<string>? AllowedAddresses { get; set; }
    public long? MaxBytes { get; set; }
    public string? Timeout { get; set; }
    public int? MaxRedirects { get; set; }
}

/// <summary>Active health probing of deployments whose circuit is open: a cheap request every interval.</summary>
public sealed class ProbeDocument
{
    public bool? Enabled { get; set; }
    public string? Interval { get; set; }
    public string? Jitter { get; set; }
    public string? Timeout { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    ReadCommentHandling = JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(RoutingConfigDocument))]
[JsonSerializable(typeof(List<string>))]
internal sealed partial class RoutingConfigJsonContext : JsonSerializerContext;

/// <summary>Caching: a route's exact response cache.</summary>
public sealed class CacheDocument
{
    public bool? Enabled { get; set; }
    public string? Ttl { get; set; }
    public string? Scope { get; set; }
    public int? MaxEntryBytes { get; set; }
    public bool? CacheLength { get; set; }
    public SemanticCacheDocument? Semantic { get; set; }
}

/// <summary>A route's semantic cache: similar (not only identical) prompts answered from the exact cache's entries.</summary>
public sealed class SemanticCacheDocument
{
    public string? Deployment { get; set; }
    public double? Threshold { get; set; }
    public double? MaxTemperature { get; set; }
    public int? MaxEntries { get; set; }
}
