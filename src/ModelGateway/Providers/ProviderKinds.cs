namespace ModelGateway.Providers;

/// <summary>The provider kinds a routing file can name (<c>providers[].kind</c>).</summary>
internal static class ProviderKinds
{
    public const string OpenAI = "openai";
    public const string OpenAICompatible = "openai-compatible";
    public const string AzureOpenAI = "azure-openai";
    public const string Anthropic = "anthropic";
    public const string Simulated = "simulated";
    public const string Gemini = "gemini";
    public const string VertexAI = "vertex-ai";
    public const string Bedrock = "bedrock";
}
