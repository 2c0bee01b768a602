namespace ModelGateway.FakeUpstream;

/// <summary>Start-up settings of a <see cref="FakeUpstreamServer"/>.</summary>
public sealed class FakeUpstreamOptions
{
    /// <summary>TCP port on 127.0.0.1; 0 lets the OS choose a free one.</summary>
    public int Port { get; init; }

    /// <summary>
    /// Key the fake demands; null accepts anything. OpenAI paths need <c>Authorization: Bearer {key}</c>,
    /// Azure paths need <c>api-key: {key}</c>; a missing or different key gets a 401.
    /// </summary>
    public string? ExpectedApiKey { get; init; }

    /// <summary>
    /// Load-harness mode: nothing is recorded, only <see cref="FakeUpstreamServer.DefaultBehavior"/> applies
    /// (queues and per-model behaviours are ignored) and success bodies come from precomputed templates.
    /// </summary>
    public bool FastMode { get; init; }

    /// <summary>Length of embedding vectors when the request does not ask for <c>dimensions</c>.</summary>
    public int EmbeddingDimensions { get; init; } = 8;
}
