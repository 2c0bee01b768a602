using System.ClientModel;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Chat;

namespace ModelGateway.Tests.Resilience;

/// <summary>While any candidate can serve, the client gets an answer; failures never leak as garbage or false success.</summary>
public sealed class FailoverTests : IAsyncLifetime
{
    private FakeUpstreamServer _primary = null!;
    private FakeUpstreamServer _secondary = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _primary = await FakeUpstreamServer.StartAsync();
        _secondary = await FakeUpstreamServer.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: p1, kind: openai-compatible, baseUrl: "{{_primary.OpenAIBaseUrl}}" }
              - { name: p2, kind: openai-compatible, baseUrl: "{{_secondary.OpenAIBaseUrl}}" }
            deployments:
              - { name: first, provider: p1, model: first-model, contextWindow: 4096 }
              - { name: second, provider: p2, model: second-model, contextWindow: 128000 }
            routes:
              - name: chat
                strategy: priority
                targets: [first, second]
                resilience: { firstTokenTimeout: 1s, responseTimeout: 1s, backoff: 50ms, maxBackoff: 1s }
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _primary.DisposeAsync();
        await _secondary.DisposeAsync();
    }

    public static TheoryData<string, UpstreamBehavior> PrimaryFailures => new()
    {
        { "503", new UpstreamBehavior { StatusCode = 503 } },
        { "500", new UpstreamBehavior { StatusCode = 500 } },
        { "408", new UpstreamBehavior { StatusCode = 408 } },
        { "429", new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after"] = "30" } } },
        { "reset before headers", new UpstreamBehavior { Fault = UpstreamFault.ResetBeforeHeaders } },
        { "html page", new UpstreamBehavior { StatusCode = 502, Fault = UpstreamFault.HtmlErrorPage } },
        { "truncated json", new UpstreamBehavior { Fault = UpstreamFault.InvalidJson } },
        { "no answer in time", new UpstreamBehavior { HeaderDelay = TimeSpan.FromSeconds(10) } },
    };

    [Theory]
    [MemberData(nameof(PrimaryFailures))]
    public async Task A_failing_first_choice_is_invisible_to_the_sdk(string failure, UpstreamBehavior behavior)
    {
        _primary.DefaultBehavior = behavior;

        ChatCompletion completion = await _gateway.OpenAI().GetChatClient("chat").CompleteChatAsync([new UserChatMessage("Hello")]);

        Assert.Equal("Hello from second-model. This reply is streamed in pieces.", completion.Content[0].Text);
        Assert.Equal("second-model", completion.Model);
        Assert.True(_primary.RequestCount >= 1, failure);
        Assert.Equal(1, _secondary.RequestCount);
    }

    [Fact]
    public async Task A_stream_fails_over_before_its_first_byte()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromSeconds(10) };

        var text = new System.Text.StringBuilder();
        await foreach (var update in _gateway.OpenAI().GetChatClient("chat").CompleteChatStreamingAsync([new UserChatMessage("Hello")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.Equal("Hello from second-model. This reply is streamed in pieces.", text.ToString());
        var abandoned = Assert.Single(_primary.Requests);
        Assert.Equal(RequestOutcome.ClientAborted, await abandoned.Completion.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Headers_and_usage_name_the_deployment_that_answered()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        Assert.Equal("second", response.Headers.GetValues("x-modelgateway-deployment").Single());
        Assert.Equal("2", response.Headers.GetValues("x-modelgateway-attempts").Single());
        Assert.Equal("failover: first failed", response.Headers.GetValues("x-modelgateway-route-reason").Single());
        Assert.Equal("second-model", json.RootElement.GetProperty("model").GetString());
    }

    [Fact]
    public async Task A_429_cools_the_deployment_down_for_as_long_as_it_asked()
    {
        _primary.Enqueue(new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after-ms"] = "60000" } });

        for (var i = 0; i < 4; i++)
        {
            using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
            Assert.Equal("second", response.Headers.GetValues("x-modelgateway-deployment").Single());
        }

        // Asked once, refused, and then left alone: no hammering of a provider that said "wait".
        Assert.Equal(1, _primary.RequestCount);
    }

    [Fact]
    public async Task Context_length_exceeded_moves_to_a_larger_context_deployment_and_is_not_retried_on_the_same_one()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded", ErrorMessage = "This model's maximum context length is 4096 tokens." };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"short enough to pass the estimate"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("second", response.Headers.GetValues("x-modelgateway-deployment").Single());
        Assert.Equal(1, _primary.RequestCount);
    }

    [Fact]
    public async Task Context_length_exceeded_with_no_larger_candidate_returns_the_error()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded", ErrorMessage = "This model's maximum context length is 4096 tokens." };
        _secondary.DefaultBehavior = new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded", ErrorMessage = "This model's maximum context length is 128000 tokens." };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("\"code\":\"context_length_exceeded\"", body, StringComparison.Ordinal);
        Assert.Equal(1, _primary.RequestCount);
        Assert.Equal(1, _secondary.RequestCount);
    }

    [Fact]
    public async Task A_content_policy_refusal_is_not_retried_and_its_reason_reaches_the_client()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 400, ErrorCode = "content_filter", ErrorMessage = "The prompt triggered the content management policy: violence." };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("content management policy: violence", body, StringComparison.Ordinal);
        Assert.Equal(1, _primary.RequestCount);
        Assert.Equal(0, _secondary.RequestCount);
    }

    [Fact]
    public async Task When_every_candidate_fails_the_error_counts_the_attempts_and_says_not_to_retry()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };
        _secondary.DefaultBehavior = new UpstreamBehavior { StatusCode = 502 };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var message = json.RootElement.GetProperty("error").GetProperty("message").GetString()!;

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("false", response.Headers.GetValues("x-should-retry").Single());
        Assert.Contains("all 3 attempts failed", message, StringComparison.Ordinal);
        Assert.Contains("first: HTTP 500", message, StringComparison.Ordinal);
        Assert.Contains("second: HTTP 502", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_every_candidate_times_out_the_client_gets_504()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { HeaderDelay = TimeSpan.FromSeconds(10) };
        _secondary.DefaultBehavior = new UpstreamBehavior { HeaderDelay = TimeSpan.FromSeconds(10) };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("false", response.Headers.GetValues("x-should-retry").Single());
    }

    [Fact]
    public async Task When_every_candidate_is_rate_limited_the_client_gets_429_with_retry_after()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after"] = "20" } };
        _secondary.DefaultBehavior = new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after"] = "7" } };

        var error = await Assert.ThrowsAsync<ClientResultException>(() => _gateway.OpenAI().GetChatClient("chat").CompleteChatAsync([new UserChatMessage("hi")]));
        using var again = await _gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");

        Assert.Equal(429, error.Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, again.StatusCode);
        Assert.InRange(int.Parse(again.Headers.GetValues("retry-after").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 7);
        Assert.Equal("true", again.Headers.GetValues("x-should-retry").Single());
        Assert.Equal(1, _primary.RequestCount);
        Assert.Equal(1, _secondary.RequestCount);
    }

    [Fact]
    public async Task A_client_that_goes_away_before_the_answer_cancels_the_upstream_call()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { HeaderDelay = TimeSpan.FromSeconds(30) };
        using var cancel = new CancellationTokenSource();
        var call = _gateway.Http.PostAsync("v1/chat/completions", GatewayHost.Json("""{"model":"chat","messages":[{"role":"user","content":"hi"}]}"""), cancel.Token);

        var seen = await _primary.WaitForRequestAsync(_ => true, TimeSpan.FromSeconds(5));
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        Assert.Equal(RequestOutcome.ClientAborted, await seen.Completion.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(0, _secondary.RequestCount);
    }

    [Fact]
    public async Task A_client_that_goes_away_mid_stream_cancels_the_upstream_stream()
    {
        _primary.DefaultBehavior = new UpstreamBehavior { ChunkCount = 50, ChunkDelay = TimeSpan.FromMilliseconds(100) };
        using var client = _gateway.NewClient();
        using var response = await client.SendAsync(
            new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = GatewayHost.Json("""{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}""") },
            HttpCompletionOption.ResponseHeadersRead);
        var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[256];
        await stream.ReadExactlyAsync(buffer.AsMemory(0, 64));

        var clock = Stopwatch.StartNew();
        response.Dispose();
        var seen = Assert.Single(_primary.Requests);
        Assert.Equal(RequestOutcome.ClientAborted, await seen.Completion.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"the upstream saw the abort after {clock.Elapsed}");
    }
}
