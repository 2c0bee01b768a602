using System.Net;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Providers.Media;

/// <summary>
/// A client never chooses where the gateway connects: every field and header the SDKs and other
/// gateways use to set a base URL, host, region or endpoint is ignored, and the upstream contacted is
/// the configured one. Each value points at a canary that must see no connection.
/// </summary>
public sealed class ClientChosenEndpointTests : IAsyncLifetime
{
    private FakeUpstreamServer _upstream = null!;
    private ConnectionCanary _canary = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _canary = ConnectionCanary.Start();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: compatible, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: azure, kind: azure-openai, baseUrl: "{{_upstream.AzureEndpoint}}", apiKey: "{{TestConfigs.ProviderKey}}", region: eastus }
              - { name: anthropic, kind: anthropic, baseUrl: "{{_upstream.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: compatible-d, provider: compatible, model: gpt-4o-mini, capabilities: [chat, vision] }
              - { name: azure-d, provider: azure, model: gpt4o-prod, capabilities: [chat, vision] }
              - { name: anthropic-d, provider: anthropic, model: claude-sonnet-4-5, capabilities: [chat, vision] }
            routes:
              - { name: compatible, targets: [compatible-d] }
              - { name: azure, targets: [azure-d] }
              - { name: anthropic, targets: [anthropic-d] }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _canary.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private string Canary => $"http://127.0.0.1:{_canary.Port}";

    /// <summary>Body fields that set where a request goes in SDKs (OpenAI, Azure, Anthropic, Google, AWS) and in other gateways.</summary>
    private Dictionary<string, object> EndpointFields() => new()
    {
        ["api_base"] = Canary + "/v1",
        ["base_url"] = Canary + "/v1",
        ["baseURL"] = Canary + "/v1",
        ["baseUrl"] = Canary + "/v1",
        ["api_host"] = Canary,
        ["endpoint"] = Canary,
        ["endpoint_url"] = Canary,
        ["azure_endpoint"] = Canary,
        ["azure_deployment"] = "canary",
        ["api_version"] = "2099-01-01",
        ["host"] = $"127.0.0.1:{_canary.Port}",
        ["url"] = Canary + "/v1/chat/completions",
        ["region"] = "canary-1",
        ["aws_region"] = "canary-1",
        ["region_name"] = "canary-1",
        ["location"] = "canary-1",
        ["vertex_location"] = "canary-1",
        ["project"] = "canary",
        ["project_id"] = "canary",
        ["deployment_id"] = "canary",
        ["extra_body"] = new Dictionary<string, string> { ["base_url"] = Canary, ["api_base"] = Canary },
        ["extra_headers"] = new Dictionary<string, string> { ["Host"] = $"127.0.0.1:{_canary.Port}", ["x-base-url"] = Canary },
        ["litellm_params"] = new Dictionary<string, string> { ["api_base"] = Canary },
    };

    /// <summary>Headers that carry a base URL, host, region or endpoint somewhere.</summary>
    private Dictionary<string, string> EndpointHeaders() => new()
    {
        ["x-base-url"] = Canary,
        ["x-api-base"] = Canary,
        ["x-openai-base-url"] = Canary,
        ["openai-base-url"] = Canary,
        ["x-anthropic-base-url"] = Canary,
        ["anthropic-base-url"] = Canary,
        ["x-azure-endpoint"] = Canary,
        ["x-goog-api-base-url"] = Canary,
        ["x-upstream-url"] = Canary,
        ["x-target-url"] = Canary,
        ["x-endpoint"] = Canary,
        ["x-original-url"] = Canary,
        ["x-rewrite-url"] = Canary,
        ["x-forwarded-host"] = $"127.0.0.1:{_canary.Port}",
        ["x-forwarded-proto"] = "http",
        ["forwarded"] = $"host=127.0.0.1:{_canary.Port};proto=http",
        ["x-region"] = "canary-1",
        ["x-ms-region"] = "canary-1",
        ["x-goog-region"] = "canary-1",
        ["x-amz-region"] = "canary-1",
        ["x-aws-region"] = "canary-1",
        ["x-modelgateway-upstream"] = Canary,
        ["x-modelgateway-base-url"] = Canary,
    };

    [Theory]
    [InlineData("compatible")]
    [InlineData("azure")]
    [InlineData("anthropic")]
    public async Task Every_client_field_and_header_naming_an_endpoint_is_ignored_and_the_configured_upstream_is_called(string route)
    {
        var before = _upstream.RequestCount;
        var body = EndpointFields();
        body["model"] = route;
        body["max_tokens"] = 16;
        body["messages"] = new[] { new { role = "user", content = "hello" } };
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/chat/completions?base_url={Uri.EscapeDataString(Canary)}&api_base={Uri.EscapeDataString(Canary)}&endpoint={Uri.EscapeDataString(Canary)}&region=canary-1")
        {
            Content = GatewayHost.Json(JsonSerializer.Serialize(body)),
        };
        foreach (var (name, value) in EndpointHeaders())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        // The Host header the client sends names the canary too.
        request.Headers.Host = $"127.0.0.1:{_canary.Port}";
        using var response = await _gateway.Http.SendAsync(request);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal(before + 1, _upstream.RequestCount);
        var received = _upstream.Requests[^1];
        Assert.Equal(_upstream.BaseUri.Authority, received.Headers["Host"]);
        Assert.DoesNotContain("canary", received.Path, StringComparison.Ordinal);
        Assert.DoesNotContain("canary", received.QueryString, StringComparison.Ordinal);
        Assert.DoesNotContain(_canary.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), received.QueryString, StringComparison.Ordinal);
        Assert.Equal(0, _canary.Connections);
    }

    [Fact]
    public async Task A_model_name_that_is_a_url_is_only_ever_a_route_name()
    {
        var before = _upstream.RequestCount;

        using var response = await _gateway.PostAsync("v1/chat/completions", JsonSerializer.Serialize(new
        {
            model = Canary + "/v1/gpt-4o-mini",
            messages = new[] { new { role = "user", content = "hello" } },
        }));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(before, _upstream.RequestCount);
        Assert.Equal(0, _canary.Connections);
    }
}
