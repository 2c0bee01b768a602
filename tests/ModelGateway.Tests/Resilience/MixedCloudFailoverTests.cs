using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Tests.Providers;
using OpenAI.Chat;

namespace ModelGateway.Tests.Resilience;

/// <summary>
/// One route over three clouds: an Azure OpenAI deployment, a Bedrock one (SigV4-signed) and a Gemini one.
/// With no prices in the routing file, the model catalog prices them, <c>explain</c> ranks them cheapest
/// first, and a failing deployment hands the request to the next cloud, whatever its wire.
/// </summary>
public sealed class MixedCloudFailoverTests : IAsyncLifetime
{
    private const string Answer = "Three clouds, one answer.";
    private const string BedrockModel = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    private const string AzureDeploymentName = "prod-gpt-4o";

    private FakeUpstreamServer _keyed = null!;
    private FakeUpstreamServer _aws = null!;
    private GatewayHost _gateway = null!;
    private string _secretFile = null!;

    public async Task InitializeAsync()
    {
        _secretFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(_secretFile, BedrockProviderTests.SecretAccessKey);
        _keyed = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _aws = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { AwsCredentials = new AwsCredentials(BedrockProviderTests.AccessKeyId, BedrockProviderTests.SecretAccessKey) });
        _keyed.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 4 };
        _aws.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 4 };
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: azure, kind: azure-openai, baseUrl: "{{_keyed.AzureEndpoint}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: aws, kind: bedrock, region: us-east-1, baseUrl: "{{_aws.BedrockEndpoint}}", accessKeyId: {{BedrockProviderTests.AccessKeyId}}, secretAccessKey: "file:{{_secretFile}}" }
              - { name: google, kind: gemini, baseUrl: "{{_keyed.GeminiBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: azure-gpt-4o, provider: azure, model: {{AzureDeploymentName}}, knownModel: gpt-4o }
              - { name: bedrock-sonnet, provider: aws, model: "{{BedrockModel}}" }
              - { name: gemini-flash, provider: google, model: gemini-2.5-flash }
            routes:
              - { name: three-clouds, strategy: cost, targets: [bedrock-sonnet, azure-gpt-4o, gemini-flash], resilience: { maxAttempts: 3 } }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _keyed.DisposeAsync();
        await _aws.DisposeAsync();
        File.Delete(_secretFile);
    }

    [Fact]
    public async Task Explain_ranks_the_three_clouds_by_their_catalog_price()
    {
        using var explain = await _gateway.PostAsync("v1/route/explain", """{"model":"three-clouds","messages":[{"role":"user","content":"Which cloud is cheapest for this?"}],"max_tokens":200}""");
        var candidates = JsonDocument.Parse(await explain.Content.ReadAsStringAsync()).RootElement.GetProperty("candidates").EnumerateArray().ToList();

        // Catalog list prices per million tokens (input/output): Gemini 2.5 Flash 0.30/2.50, GPT-4o 2.50/10, Claude Sonnet 4.5 3/15.
        Assert.Equal(["gemini-flash", "azure-gpt-4o", "bedrock-sonnet"], candidates.Select(c => c.GetProperty("deployment").GetString()));
        var costs = candidates.Select(c => c.GetProperty("estimated_cost_usd").GetDouble()).ToList();
        Assert.True(costs[0] < costs[1] && costs[1] < costs[2], string.Join(", ", costs));
        Assert.All(candidates, c => Assert.StartsWith("model catalog", c.GetProperty("figures").GetProperty("sources").GetProperty("pricing.input").GetString(), StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_request_fails_over_from_gemini_to_azure_to_bedrock_and_the_client_sees_one_answer()
    {
        _keyed.SetBehaviorForModel("gemini-2.5-flash", new UpstreamBehavior { StatusCode = 503 });
        _keyed.SetBehaviorForModel(AzureDeploymentName, new UpstreamBehavior { StatusCode = 500 });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"three-clouds","messages":[{"role":"user","content":"Say it once."}]}""");
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.IsSuccessStatusCode, body);
        Assert.Equal(Answer, JsonDocument.Parse(body).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("bedrock-sonnet", response.Headers.GetValues("x-modelgateway-deployment").Single());
        Assert.Contains(_keyed.Requests, r => r.Model == "gemini-2.5-flash");
        Assert.Contains(_keyed.Requests, r => r.Model == AzureDeploymentName);
        Assert.Single(_aws.Requests);
    }

    [Fact]
    public async Task A_stream_fails_over_from_gemini_to_azure_before_its_first_byte()
    {
        _keyed.SetBehaviorForModel("gemini-2.5-flash", new UpstreamBehavior { StatusCode = 429, RetryAfter = TimeSpan.FromSeconds(30) });

        var text = new StringBuilder();
        await foreach (var update in _gateway.OpenAI().GetChatClient("three-clouds").CompleteChatStreamingAsync([new UserChatMessage("Stream it.")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.Equal(Answer, text.ToString());
        Assert.Contains(_keyed.Requests, r => r.Model == AzureDeploymentName);
        Assert.Empty(_aws.Requests);
    }
}
