using System.Net;
using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Wire;

/// <summary>Bad input gets a clear OpenAI-shaped 4xx, never a 500, and never costs an upstream call.</summary>
public sealed class MalformedInputTests : IAsyncLifetime
{
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        _gateway = await GatewayHost.StartAsync(TestConfigs.SingleOpenAI(_upstream), new Dictionary<string, string?> { ["Gateway:MaxRequestBodyBytes"] = "65536" });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    public static TheoryData<string, string, string?> BadBodies => new()
    {
        { """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}""", "could not parse the JSON body", null },
        { """not json at all""", "could not parse the JSON body", null },
        { """[1,2,3]""", "must be a JSON object", null },
        { """{"messages":[{"role":"user","content":"hi"}]}""", "must provide a model", "model" },
        { """{"model":"gpt-4o-mini"}""", "Missing required parameter: 'messages'", "messages" },
        { """{"model":"gpt-4o-mini","messages":[]}""", "empty array", "messages" },
        { """{"model":"gpt-4o-mini","messages":"hi"}""", "expected an array of message objects, but got a string", "messages" },
        { """{"model":42,"messages":[{"role":"user","content":"hi"}]}""", "expected a string, but got a number", "model" },
        { """{"model":"gpt-4o-mini","messages":[{"content":"hi"}]}""", "messages[0].role", "messages[0].role" },
        { """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":"yes"}""", "expected a boolean", "stream" },
        { """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":"many"}""", "expected an integer", "max_tokens" },
        { """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":-5}""", "Expected a value >= 1", "max_tokens" },
        { """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":7}""", "between 0 and 2", "temperature" },
        { """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"n":1000}""", "between 1 and 128", "n" },
        { """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"yaml"}}""", "response_format.type", "response_format.type" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task Bad_body_is_refused_with_400_and_no_upstream_call(string body, string message, string? param)
    {
        using var response = await _gateway.PostAsync("v1/chat/completions", body);

        var error = await ErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Contains(message, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        if (param is not null)
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }

        Assert.Equal(0, _upstream.RequestCount);
    }

    [Fact]
    public async Task Json_nested_deeper_than_the_limit_is_refused()
    {
        var deep = new string('[', 200) + new string(']', 200);
        using var response = await _gateway.PostAsync("v1/chat/completions", $$"""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":{{deep}}}""");

        var error = await ErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Contains("nested more than 64 levels", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Wrong_content_type_is_refused()
    {
        using var content = new StringContent("model=gpt-4o-mini", Encoding.UTF8, "application/x-www-form-urlencoded");
        using var response = await _gateway.Http.PostAsync("v1/chat/completions", content);

        var error = await ErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal("invalid_content_type", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Body_over_the_limit_is_refused_with_413_by_its_declared_length()
    {
        var huge = new string('x', 100_000);
        using var response = await _gateway.PostAsync("v1/chat/completions", $$"""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"{{huge}}"}]}""");

        var error = await ErrorAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal("request_too_large", error.GetProperty("code").GetString());
        Assert.Equal(0, _upstream.RequestCount);
    }

    [Fact]
    public async Task Chunked_body_over_the_limit_is_refused_with_413_while_reading()
    {
        var huge = Encoding.UTF8.GetBytes($$"""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"{{new string('x', 100_000)}}"}]}""");
        using var content = new StreamContent(new UnknownLengthStream(huge));
        content.Headers.ContentType = new("application/json");
        using var response = await _gateway.Http.PostAsync("v1/chat/completions", content);

        await ErrorAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(0, _upstream.RequestCount);
    }

    [Fact]
    public async Task Unknown_path_and_wrong_method_answer_in_openai_shape()
    {
        using var missing = await _gateway.Http.GetAsync("v1/assistants");
        using var wrongMethod = await _gateway.Http.GetAsync("v1/chat/completions");

        await ErrorAsync(missing, HttpStatusCode.NotFound);
        await ErrorAsync(wrongMethod, HttpStatusCode.MethodNotAllowed);
    }

    [Fact]
    public async Task Embeddings_without_input_are_refused()
    {
        using var response = await _gateway.PostAsync("v1/embeddings", """{"model":"gpt-4o-mini"}""");

        var error = await ErrorAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal("input", error.GetProperty("param").GetString());
    }

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.Contains("x-request-id"));
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = json.RootElement.GetProperty("error");
        Assert.Equal(JsonValueKind.String, error.GetProperty("message").ValueKind);
        Assert.True(error.TryGetProperty("param", out _));
        Assert.True(error.TryGetProperty("code", out _));
        return error.Clone();
    }

    /// <summary>A body sent with chunked encoding, so only reading it reveals its size.</summary>
    private sealed class UnknownLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
