using System.Net;
using System.Text;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Chat;

namespace ModelGateway.Tests.Providers;

/// <summary>Azure OpenAI deployments are reached by deployment URL, api-key header and api-version.</summary>
public sealed class AzureOpenAITests : IAsyncLifetime
{
    private const string AzureKey = "azure-key-5d1f0c9b77aa4e21";
    private FakeUpstreamServer _azure = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _azure = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = AzureKey });
        _gateway = await GatewayHost.StartAsync($"""
            providers:
              - name: azure-eastus
                kind: azure-openai
                baseUrl: {_azure.AzureEndpoint}
                apiKey: {AzureKey}
                apiVersion: 2024-10-21
            deployments:
              - name: gpt-4o@azure
                provider: azure-eastus
                model: gpt4o-prod-deployment
                capabilities: [chat, embeddings]
            routes:
              - name: gpt-4o
                targets: [gpt-4o@azure]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _azure.DisposeAsync();
    }

    [Fact]
    public async Task Chat_goes_to_the_deployment_url_with_api_key_and_api_version()
    {
        ChatCompletion completion = await _gateway.OpenAI().GetChatClient("gpt-4o").CompleteChatAsync([new UserChatMessage("Hello")]);

        Assert.Equal("Hello from gpt4o-prod-deployment. This reply is streamed in pieces.", completion.Content[0].Text);
        var sent = Assert.Single(_azure.Requests);
        Assert.Equal("/openai/deployments/gpt4o-prod-deployment/chat/completions", sent.Path);
        Assert.Equal("?api-version=2024-10-21", sent.QueryString);
        Assert.Equal(AzureKey, sent.Headers["api-key"]);
        Assert.False(sent.Headers.ContainsKey("authorization"));
    }

    [Fact]
    public async Task Streams_and_embeddings_work_against_azure()
    {
        var text = new StringBuilder();
        await foreach (var update in _gateway.OpenAI().GetChatClient("gpt-4o").CompleteChatStreamingAsync([new UserChatMessage("Hello")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        var embedding = await _gateway.OpenAI().GetEmbeddingClient("gpt-4o").GenerateEmbeddingAsync("hello");

        Assert.Equal("Hello from gpt4o-prod-deployment. This reply is streamed in pieces.", text.ToString());
        Assert.NotEmpty(embedding.Value.ToFloats().ToArray());
        Assert.Contains(_azure.Requests, r => r.Path == "/openai/deployments/gpt4o-prod-deployment/embeddings");
    }

    [Fact]
    public async Task Azure_content_filter_rejection_reaches_the_client_with_its_reason()
    {
        _azure.Enqueue(new UpstreamBehavior
        {
            StatusCode = 400,
            ErrorCode = "content_filter",
            ErrorMessage = "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        });

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"gpt-4o","messages":[{"role":"user","content":"something filtered"}]}""");
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("\"code\":\"content_filter\"", body, StringComparison.Ordinal);
        Assert.Contains("content management policy", body, StringComparison.Ordinal);
    }
}
