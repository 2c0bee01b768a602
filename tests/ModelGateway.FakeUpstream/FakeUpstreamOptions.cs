namespace ModelGateway.FakeUpstream;

/// <summary>Start-up settings of a <see cref="FakeUpstreamServer"/>.</summary>
public sealed class FakeUpstreamOptions
{
    /// <summary>TCP port on 127.0.0.1; 0 lets the OS choose a free one.</summary>
    public int Port { get; init; }

    /// <summary>
    /// Key the fake demands; null accepts anything. OpenAI paths need <c>Authorization: Bearer {key}</c>,
    /// Azure paths need <c>api-key: {key}</c>, Anthropic paths <c>x-api-key: {key}</c> or
    /// <c>Authorization: Bearer {key}</c>, Gemini paths <c>x-goog-api-key: {key}</c> or <c>?key={key}</c>;
    /// a missing or different key gets that wire's 401 (Gemini: 400 or 403, as Google answers).
    /// </summary>
    public string? ExpectedApiKey { get; init; }

    /// <summary>
    /// OAuth access token Vertex AI paths demand as <c>Authorization: Bearer {token}</c>; null accepts any
    /// bearer token. A missing or different token gets Google's 401 <c>UNAUTHENTICATED</c>.
    /// </summary>
    public string? VertexAccessToken { get; init; }

    /// <summary>
    /// AWS credentials Bedrock requests must be SigV4-signed with (service <c>bedrock</c>, region
    /// <see cref="AwsRegion"/>); null accepts unsigned requests. A wrong signature or an unknown access key
    /// gets AWS's 403.
    /// </summary>
    public AwsCredentials? AwsCredentials { get; init; }

    /// <summary>Region Bedrock signatures are computed for.</summary>
    public string AwsRegion { get; init; } = "us-east-1";

    /// <summary>
    /// Load-harness mode: nothing is recorded, only <see cref="FakeUpstreamServer.DefaultBehavior"/> applies
    /// (queues and per-model behaviours are ignored) and success bodies come from precomputed templates.
    /// </summary>
    public bool FastMode { get; init; }

    /// <summary>
    /// Queueing capacity, as a self-hosted server (vLLM, TGI) has it: at most this many model requests run at
    /// once, the rest wait in a queue (their wait adds to the time to first token). Null: no limit. With slots,
    /// <c>GET /metrics</c> answers vLLM-style Prometheus text (<c>vllm:num_requests_waiting</c>,
    /// <c>vllm:num_requests_running</c>, <c>vllm:kv_cache_usage_perc</c>).
    /// </summary>
    public int? Slots { get; init; }

    /// <summary>Length of embedding vectors when the request does not ask for <c>dimensions</c>.</summary>
    public int EmbeddingDimensions { get; init; } = 8;

    /// <summary>
    /// Embeddings as hashed bags of words instead of a hash of the whole text: texts sharing most of their
    /// words get vectors with a cosine similarity near 1, unrelated texts near 0 (for semantic-cache tests;
    /// give it a few hundred <see cref="EmbeddingDimensions"/> so that words rarely share a slot).
    /// </summary>
    public bool WordEmbeddings { get; init; }
}

/// <summary>An AWS access key pair the fake Bedrock expects requests to be signed with.</summary>
public sealed record AwsCredentials(string AccessKeyId, string SecretAccessKey);
