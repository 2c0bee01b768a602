using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using ModelGateway.Configuration;
using ModelGateway.Resilience;
using ModelGateway.Routing;

namespace ModelGateway.Tests.Infrastructure;

/// <summary>Compiled deployments for unit tests of routing and forwarding pieces.</summary>
internal static class TestDeployments
{
    public static readonly CircuitBreakerSettings Breaker = new(0.5, 10, TimeSpan.FromSeconds(30), 5, TimeSpan.FromSeconds(30));

    public static Deployment Create(
        string name,
        string upstreamModel = "m",
        TimeProvider? time = null,
        DeploymentTier tier = DeploymentTier.Saas,
        Capabilities capabilities = Capabilities.Chat,
        int? contextWindow = null,
        double inputPrice = 0,
        double outputPrice = 0,
        double perHour = 0,
        int? capacity = null,
        string? region = null,
        string[]? tags = null,
        TokenizerKind tokenizer = TokenizerKind.O200k,
        TimeSpan? latencyWindow = null,
        int? maxOutputTokens = null,
        int? rpm = null,
        int? tpm = null,
        WindowLimit? requests = null,
        WindowLimit? tokens = null,
        double? cacheReadPrice = null)
    {
        time ??= TimeProvider.System;
        var provider = new ProviderEndpoint
        {
            Name = name + "-provider",
            Kind = "openai-compatible",
            Factory = new ModelGateway.Providers.OpenAI.OpenAICompatibleFactory(null!),
            Tier = tier,
            BaseUri = new Uri("http://127.0.0.1:1/v1"),
            ApiKey = null,
            Region = region,
            Tags = tags ?? [],
            ExtraHeaders = [],
            ConnectTimeout = TimeSpan.FromSeconds(1),
            Simulation = null,
        };
        var window = latencyWindow ?? TimeSpan.FromMinutes(5);
        var deployment = new Deployment
        {
            Name = name,
            Index = 0,
            Provider = provider,
            UpstreamModel = upstreamModel,
            UpstreamModelJson = JsonSerializer.SerializeToUtf8Bytes(upstreamModel),
            ContextWindow = contextWindow,
            MaxOutputTokens = maxOutputTokens,
            Pricing = new Pricing(inputPrice / 1_000_000, outputPrice / 1_000_000, (cacheReadPrice ?? inputPrice) / 1_000_000, perHour),
            Capabilities = capabilities,
            Capacity = capacity,
            RequestLimit = requests ?? (rpm is { } r ? new WindowLimit(r, 60) : null),
            TokenLimit = tokens ?? (tpm is { } t ? new WindowLimit(t, 60) : null),
            Region = region,
            Tags = tags ?? [],
            Tokenizer = tokenizer,
            StreamUsage = true,
            FirstTokenTimeout = null,
            IdleTimeout = null,
            LatencyWindow = window,
            CircuitBreaker = Breaker,
            Simulation = null,
        };
        deployment.State = new DeploymentState(name, time, window)
        {
            Circuit = new DeploymentCircuit(name, Breaker, time, NullLogger.Instance),
        };
        return deployment;
    }
}
