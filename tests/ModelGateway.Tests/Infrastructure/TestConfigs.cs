using ModelGateway.FakeUpstream;

namespace ModelGateway.Tests.Infrastructure;

/// <summary>Routing files for tests, written the way admins write them.</summary>
internal static class TestConfigs
{
    public const string ProviderKey = "sk-provider-secret-7f3a9c2e1b";

    /// <summary>One OpenAI-compatible provider with one deployment behind one route.</summary>
    public static string SingleOpenAI(FakeUpstreamServer upstream, string route = "gpt-4o-mini", string upstreamModel = "gpt-4o-mini-2024-07-18", string extraRoute = "", string deploymentExtra = "") => $"""
        providers:
          - name: upstream
            kind: openai-compatible
            baseUrl: {upstream.OpenAIBaseUrl}
            apiKey: {ProviderKey}
        deployments:
          - name: primary
            provider: upstream
            model: {upstreamModel}
            contextWindow: 128000
            pricing: {"{"} input: 0.15, output: 0.60 {"}"}
            capabilities: [chat, completions, embeddings, tools, vision, json_schema]
        {deploymentExtra}
        routes:
          - name: {route}
            targets: [primary]
        {extraRoute}
        """;
}
