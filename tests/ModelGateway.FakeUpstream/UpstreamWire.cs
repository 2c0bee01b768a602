namespace ModelGateway.FakeUpstream;

/// <summary>The provider wire format a request came in on, decided by its path.</summary>
public enum UpstreamWire
{
    /// <summary>A path no wire serves.</summary>
    Unknown,

    /// <summary><c>/v1/chat/completions</c>, <c>/v1/completions</c>, <c>/v1/embeddings</c>, <c>/v1/models</c>.</summary>
    OpenAI,

    /// <summary><c>/openai/deployments/{deployment}/...</c>.</summary>
    AzureOpenAI,

    /// <summary>Anthropic Messages API: <c>/v1/messages</c>, <c>/v1/messages/count_tokens</c>.</summary>
    Anthropic,

    /// <summary>Google AI Studio: <c>/v1beta/models/{model}:{method}</c>.</summary>
    Gemini,

    /// <summary>Vertex AI, Google models: <c>/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:{method}</c>.</summary>
    VertexGemini,

    /// <summary>Vertex AI, Claude models: <c>.../publishers/anthropic/models/{m}:rawPredict|streamRawPredict</c>.</summary>
    VertexAnthropic,

    /// <summary>AWS Bedrock Runtime: <c>/model/{modelId}/converse</c> and <c>/converse-stream</c>.</summary>
    Bedrock,

    /// <summary>OpenAI's Responses API: <c>/v1/responses</c> (Azure: <c>/openai/v1/responses</c>), and stored responses by id.</summary>
    OpenAIResponses,

    /// <summary>OpenAI's images, audio, moderations, files and batches endpoints.</summary>
    OpenAIExtras,
}
