using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Responses;

#pragma warning disable OPENAI001

namespace ModelGateway.Tests.Protocols.Responses;

/// <summary>The routing file and helpers the Responses API tests share.</summary>
internal static class ResponsesRoutes
{
    /// <summary>
    /// One route per kind: <c>oai</c> (OpenAI, passed through), <c>compat</c> (an OpenAI-compatible server,
    /// translated to chat completions), <c>claude</c> (Anthropic, translated), <c>sim</c> (the simulator) and
    /// <c>gemini</c> (the Gemini API, translated).
    /// </summary>
    public static string Yaml(FakeUpstreamServer upstream, string extra = "") => $$"""
        providers:
          - { name: openai, kind: openai, baseUrl: "{{upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
          - { name: compat, kind: openai-compatible, baseUrl: "{{upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
          - { name: anthropic, kind: anthropic, baseUrl: "{{upstream.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
          - { name: sim, kind: simulated, simulate: { ttft: 1ms, tokensPerSecond: 2000, outputTokens: 12 } }
          - { name: google, kind: gemini, baseUrl: "{{upstream.GeminiBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
        deployments:
          - { name: gpt, provider: openai, model: gpt-4.1, capabilities: [chat, tools, vision, json_schema] }
          - { name: local, provider: compat, model: qwen3, capabilities: [chat, tools, vision, json_schema] }
          - { name: sonnet, provider: anthropic, model: claude-sonnet-4-5, defaultMaxTokens: 1024 }
          - { name: simulated, provider: sim, model: sim-1 }
          - { name: flash, provider: google, model: gemini-2.5-flash }
        routes:
          - { name: oai, targets: [gpt] }
          - { name: compat, targets: [local] }
          - { name: claude, targets: [sonnet] }
          - { name: sim, targets: [simulated] }
          - { name: gemini, targets: [flash] }
        {{extra}}
        """;

    public static FunctionTool[] WeatherTools() =>
    [
        ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string"}},"required":["location"]}"""), strictModeEnabled: false, functionDescription: "Weather now"),
        ResponseTool.CreateFunctionTool("get_time", BinaryData.FromString("""{"type":"object","properties":{"timezone":{"type":"string"}}}"""), strictModeEnabled: false, functionDescription: "Time now"),
    ];

    /// <summary>Reads a Responses stream event by event, keeping what arrived before the connection broke, if it did.</summary>
    public static async Task<List<(string Name, JsonNode Data)>> ReadEventsAsync(HttpResponseMessage response)
    {
        var events = new List<(string Name, JsonNode Data)>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string? name = null;
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    name = line[7..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    events.Add((name ?? string.Empty, JsonNode.Parse(line[6..])!));
                    name = null;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            // The gateway aborted the connection after its error event: what came before is the record.
        }

        return events;
    }
}
