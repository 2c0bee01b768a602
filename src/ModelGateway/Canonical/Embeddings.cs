namespace ModelGateway.Canonical;

/// <summary>
/// An embeddings request in no provider's wire, built only when the chosen deployment speaks another
/// wire than the client (an OpenAI embeddings client on a Gemini deployment).
/// </summary>
internal sealed class EmbeddingRequest
{
    /// <summary>The texts to embed, in order; the answer has one vector per text.</summary>
    public List<string> Inputs { get; } = [];

    /// <summary>Requested vector length, when the client named one.</summary>
    public int? Dimensions { get; set; }

    /// <summary>An end-user id for the provider's abuse monitoring.</summary>
    public string? User { get; set; }

    /// <summary>True when the client asked for base64-encoded vectors (the OpenAI SDKs' default).</summary>
    public bool Base64 { get; set; }
}

/// <summary>A translated embeddings answer: one vector per input, in order.</summary>
internal sealed class EmbeddingResponse
{
    public required IReadOnlyList<float[]> Vectors { get; init; }

    /// <summary>Input tokens; <see cref="TokenUsage.Reported"/> is false when the provider reports none and the gateway estimates.</summary>
    public TokenUsage Usage { get; init; }
}
