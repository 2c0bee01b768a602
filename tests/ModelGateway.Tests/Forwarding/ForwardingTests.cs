using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Forwarding;

/// <summary>What crosses the gateway: the body as the client wrote it (model rewritten), the provider's credential, nothing of the client's.</summary>
public sealed class ForwardingTests : IAsyncLifetime
{
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _gateway = await GatewayHost.StartAsync(TestConfigs.SingleOpenAI(_upstream));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task Model_is_rewritten_and_every_other_byte_of_the_body_passes_through()
    {
        const string body = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],"response_format":{"type":"json_object"},"seed":7,"future_parameter":{"nested":[1,2,3]},"tool_choice":"auto"}""";

        using var response = await _gateway.PostAsync("v1/chat/completions", body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = Assert.Single(_upstream.Requests);
        Assert.Equal(body.Replace("\"model\":\"gpt-4o-mini\"", "\"model\":\"gpt-4o-mini-2024-07-18\"", StringComparison.Ordinal), sent.BodyText);
    }

    [Fact]
    public async Task Client_credentials_and_cookies_never_reach_the_provider()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = GatewayHost.Json(Chat()) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-client-own-key");
        request.Headers.Add("api-key", "client-azure-key");
        request.Headers.Add("Cookie", "session=abc");
        request.Headers.Add("OpenAI-Organization", "org-client");
        request.Headers.Add("X-Custom-Trace", "keep-me");

        using var response = await _gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = Assert.Single(_upstream.Requests);
        Assert.Equal("Bearer " + TestConfigs.ProviderKey, sent.Headers["authorization"]);
        Assert.False(sent.Headers.ContainsKey("api-key"));
        Assert.False(sent.Headers.ContainsKey("cookie"));
        Assert.False(sent.Headers.ContainsKey("openai-organization"));
        Assert.Equal("keep-me", sent.Headers["x-custom-trace"]);
    }

    [Fact]
    public async Task Hop_by_hop_headers_are_stripped_in_both_directions()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior
        {
            Headers = new Dictionary<string, string> { ["Keep-Alive"] = "timeout=5", ["Proxy-Authenticate"] = "Basic", ["Set-Cookie"] = "__cf_bm=secret", ["openai-organization"] = "org-provider" },
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = GatewayHost.Json(Chat()) };
        request.Headers.TryAddWithoutValidation("Keep-Alive", "timeout=9");
        request.Headers.TryAddWithoutValidation("TE", "trailers");
        request.Headers.TryAddWithoutValidation("Proxy-Authorization", "Basic abc");

        using var response = await _gateway.Http.SendAsync(request);

        var sent = Assert.Single(_upstream.Requests);
        Assert.False(sent.Headers.ContainsKey("keep-alive"));
        Assert.False(sent.Headers.ContainsKey("te"));
        Assert.False(sent.Headers.ContainsKey("proxy-authorization"));
        Assert.False(response.Headers.Contains("Keep-Alive"));
        Assert.False(response.Headers.Contains("Proxy-Authenticate"));
        Assert.False(response.Headers.Contains("Set-Cookie"));
        Assert.False(response.Headers.Contains("openai-organization"));
    }

    [Fact]
    public async Task Responses_name_the_request_the_deployment_and_the_provider()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = GatewayHost.Json(Chat()) };
        request.Headers.Add("x-request-id", "client-chosen-id-42");

        using var response = await _gateway.Http.SendAsync(request);

        Assert.Equal("client-chosen-id-42", response.Headers.GetValues("x-request-id").Single());
        Assert.Equal("primary", response.Headers.GetValues("x-modelgateway-deployment").Single());
        Assert.Equal("upstream", response.Headers.GetValues("x-modelgateway-provider").Single());
        Assert.Equal("gpt-4o-mini", response.Headers.GetValues("x-modelgateway-route").Single());
        Assert.NotEmpty(response.Headers.GetValues("x-modelgateway-route-reason").Single());
        Assert.Equal("client-chosen-id-42", Assert.Single(_upstream.Requests).Headers["x-request-id"]);

        using var generated = await _gateway.PostAsync("v1/chat/completions", Chat());
        Assert.StartsWith("req_", generated.Headers.GetValues("x-request-id").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_is_relayed_chunk_by_chunk_while_the_upstream_holds_back_the_last()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "alpha bravo charlie zulu", ChunkCount = 4, HoldBeforeLastChunk = release.Task };

        using var response = await _gateway.PostAsync("v1/chat/completions", Chat(stream: true));
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        await using var stream = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(stream, Encoding.UTF8);

        // The first three content pieces arrive although the upstream has not sent the last one yet.
        var received = new StringBuilder();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!received.ToString().Contains("charlie", StringComparison.Ordinal))
        {
            var line = await reader.ReadLineAsync(timeout.Token);
            Assert.NotNull(line);
            received.AppendLine(line);
        }

        Assert.False(release.Task.IsCompleted);
        Assert.DoesNotContain("zulu", received.ToString(), StringComparison.Ordinal);

        release.SetResult();
        var rest = await reader.ReadToEndAsync(timeout.Token);
        Assert.Contains("zulu", rest, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", rest, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_chunk_the_gateway_asked_for_is_not_shown_to_a_client_that_did_not()
    {
        using var response = await _gateway.PostAsync("v1/chat/completions", Chat(stream: true));
        var text = await response.Content.ReadAsStringAsync();

        var sent = Assert.Single(_upstream.Requests).Json!;
        Assert.True(sent["stream_options"]!["include_usage"]!.GetValue<bool>());
        Assert.DoesNotContain("\"prompt_tokens\"", text, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_chunk_reaches_a_client_that_asked_for_it()
    {
        using var response = await _gateway.PostAsync("v1/chat/completions", Chat(stream: true, includeUsage: true));
        var text = await response.Content.ReadAsStringAsync();

        Assert.Contains("\"choices\":[],\"usage\":{\"prompt_tokens\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Legacy_completions_are_forwarded_streamed_and_not()
    {
        using var plain = await _gateway.PostAsync("v1/completions", """{"model":"gpt-4o-mini","prompt":"Say this is a test","max_tokens":7}""");
        using var streamed = await _gateway.PostAsync("v1/completions", """{"model":"gpt-4o-mini","prompt":"Say this is a test","stream":true}""");

        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        using var json = JsonDocument.Parse(await plain.Content.ReadAsStringAsync());
        Assert.Equal("text_completion", json.RootElement.GetProperty("object").GetString());
        var text = await streamed.Content.ReadAsStringAsync();
        Assert.Contains("\"object\":\"text_completion\"", text, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
        Assert.All(_upstream.Requests, r => Assert.Equal("/v1/completions", r.Path));
    }

    private static string Chat(bool stream = false, bool includeUsage = false)
        => $$"""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]{{(stream ? ",\"stream\":true" : "")}}{{(includeUsage ? ",\"stream_options\":{\"include_usage\":true}" : "")}}}""";
}
