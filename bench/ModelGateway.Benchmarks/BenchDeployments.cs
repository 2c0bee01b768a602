using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Resilience;
using ModelGateway.Routing;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Benchmarks;

/// <summary>Builds fleets of compiled deployments and requests for the micro-benchmarks.</summary>
internal static class BenchDeployments
{
    private static readonly CircuitBreakerSettings Breaker = new(0.5, 10, TimeSpan.FromSeconds(30), 5, TimeSpan.FromSeconds(30));

    public static Deployment[] Fleet(int count)
    {
        var tiers = new[] { DeploymentTier.Iaas, DeploymentTier.Paas, DeploymentTier.Saas };
        var deployments = new Deployment[count];
        for (var i = 0; i < count; i++)
        {
            var name = $"deployment-{i}";
            var provider = new ProviderEndpoint
            {
                Name = $"provider-{i % 7}",
                Kind = "openai-compatible",
                Factory = new ModelGateway.Providers.OpenAI.OpenAICompatibleFactory(null!),
                Tier = tiers[i % 3],
                BaseUri = new Uri("http://127.0.0.1:1/v1"),
                ApiKey = null,
                Region = i % 2 == 0 ? "eu-west" : "us-east",
                Tags = [],
                ExtraHeaders = [],
                ConnectTimeout = TimeSpan.FromSeconds(5),
                Simulation = null,
            };
            var deployment = new Deployment
            {
                Name = name,
                Index = i,
                Provider = provider,
                UpstreamModel = "model-" + i,
                UpstreamModelJson = JsonSerializer.SerializeToUtf8Bytes("model-" + i),
                ContextWindow = i % 5 == 0 ? 8192 : 128000,
                MaxOutputTokens = 16384,
                Pricing = new Pricing((0.1 + (i % 13)) / 1_000_000, (0.4 + (i % 11)) / 1_000_000, 0, 0),
                Capabilities = Capabilities.Chat | Capabilities.Tools | (i % 4 == 0 ? Capabilities.None : Capabilities.Vision),
                Capacity = i % 3 == 0 ? 16 : null,
                RequestLimit = null,
                TokenLimit = null,
                Region = provider.Region,
                Tags = [],
                Tokenizer = TokenizerKind.O200k,
                StreamUsage = true,
                FirstTokenTimeout = null,
                IdleTimeout = null,
                LatencyWindow = TimeSpan.FromMinutes(5),
                CircuitBreaker = Breaker,
                Simulation = null,
            };
            deployment.State = new DeploymentState(name, TimeProvider.System, deployment.LatencyWindow)
            {
                Circuit = new DeploymentCircuit(name, Breaker, TimeProvider.System, NullLogger.Instance),
            };

            // Live latency, as traffic would have left it.
            for (var s = 0; s < 20; s++)
            {
                deployment.State.Latency.Record(TimeSpan.FromMilliseconds(100 + (i % 17 * 20) + s), TimeSpan.FromMilliseconds(900 + (i % 23 * 40)));
            }

            deployments[i] = deployment;
        }

        return deployments;
    }

    public static ModelRoute Route(Deployment[] targets, RoutingStrategyKind strategy, SloSettings? slo = null) => new()
    {
        Name = "bench",
        Description = null,
        Strategy = strategy,
        StrategyName = strategy.ToString().ToLowerInvariant(),
        Targets = targets,
        Weights = targets.Select(_ => 1.0).ToArray(),
        Slo = slo,
        CostWeight = 0.5,
        LatencyWeight = 0.5,
        Exploration = 0.05,
        ExpectedOutputTokens = 256,
        AllowedTiers = null,
        AllowedRegions = null,
        RequiredTags = null,
        Resilience = new RouteResilience(3, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(5),
            TimeSpan.FromSeconds(60), TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(15), null, false),
        IsAuto = false,
    };

    public const string ChatBody = """{"model":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about the sea and the wind, please."}],"temperature":0.7,"max_tokens":200,"stream":true}""";

    public static GatewayRequest Request(string body = ChatBody)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var request = new GatewayRequest(new DefaultHttpContext(), OpenAIChatProtocol.Instance, Operation.ChatCompletions, "bench", 0);
        request.SetBody(bytes, bytes.Length);
        RequestParser.TryParse(request.Body, Operation.ChatCompletions, 64, out request.Info, out _);
        return request;
    }
}
