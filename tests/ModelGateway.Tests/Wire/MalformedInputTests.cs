using System.Net;
using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Wire;

/// <summary>One fake upstream and one gateway for every case: nothing here may reach the upstream, so it stays at zero calls throughout.</summary>
public sealed class MalformedInputFixture : IAsyncLifetime
{
    public FakeUpstreamServer Upstream { get; private set; } = null!;

    internal GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await FakeUpstreamServer.StartAsync();
        Gateway = await GatewayHost.StartAsync(TestConfigs.SingleOpenAI(Upstream), new Dictionary<string, string?> { ["Gateway:MaxRequestBodyBytes"] = "65536" });
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Upstream.DisposeAsync();
    }
}

/// <summary>Bad input gets a clear OpenAI-shaped 4xx, never a 500, and never costs an upstream call.</summary>
public sealed class MalformedInputTests(MalformedInputFixture fixture) : IClassFixture<MalformedInputFixture>
{
    private readonly FakeUpstreamServer _upstream = fixture.Upstream;
    private readonly GatewayHost _gateway = fixture.Gateway;

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

    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]""";

    /// <summary>Bodies sent byte for byte over a socket: what each is, the bytes, what the error says, its param, and the path.</summary>
    private static readonly Dictionary<string, (byte[] Body, string Message, string? Param, string Path)> RawCases = new()
    {
        // Invalid UTF-8 anywhere in the body: JSON is UTF-8 by definition, so none of these is JSON.
        ["utf8: C3 28, a lead byte without its continuation"] = (RawHttp.WithBytes("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a@@b"}]}""", [0xC3, 0x28]), "not valid UTF-8", null, "/v1/chat/completions"),
        ["utf8: C0 AF, an overlong slash"] = (RawHttp.WithBytes("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"..@@etc"}]}""", [0xC0, 0xAF]), "not valid UTF-8", null, "/v1/chat/completions"),
        ["utf8: ED A0 80, a surrogate encoded in UTF-8"] = (RawHttp.WithBytes("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"@@"}]}""", [0xED, 0xA0, 0x80]), "not valid UTF-8", null, "/v1/chat/completions"),
        ["utf8: E2 82, a sequence cut short"] = (RawHttp.WithBytes("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"price @@"}]}""", [0xE2, 0x82]), "not valid UTF-8", null, "/v1/chat/completions"),
        ["utf8: F4 90 80 80, beyond U+10FFFF"] = (RawHttp.WithBytes("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"@@"}]}""", [0xF4, 0x90, 0x80, 0x80]), "not valid UTF-8", null, "/v1/chat/completions"),
        ["utf8: FF in a field name"] = (RawHttp.WithBytes("""{"model":"gpt-4o-mini","mess@@ages":[{"role":"user","content":"hi"}]}""", [0xFF]), "not valid UTF-8", null, "/v1/chat/completions"),
        ["utf8: C3 28 in an embeddings input"] = (RawHttp.WithBytes("""{"model":"gpt-4o-mini","input":"@@"}""", [0xC3, 0x28]), "not valid UTF-8", null, "/v1/embeddings"),
        ["utf8: C0 AF in a completions prompt"] = (RawHttp.WithBytes("""{"model":"gpt-4o-mini","prompt":"@@"}""", [0xC0, 0xAF]), "not valid UTF-8", null, "/v1/completions"),
        ["utf8: C3 28 in a route explanation"] = (RawHttp.WithBytes("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"@@"}]}""", [0xC3, 0x28]), "not valid UTF-8", null, "/v1/route/explain"),
        ["an escaped lone surrogate as the model name"] = (Utf8("""{"model":"\ud800","messages":[{"role":"user","content":"hi"}]}"""), "lone surrogate", null, "/v1/chat/completions"),

        // What OpenAI refuses in messages.
        ["an unknown role"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"wizard","content":"hi"}]}"""), "Invalid value: 'wizard'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", "messages[0].role", "/v1/chat/completions"),
        ["a role in capitals"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"User","content":"hi"}]}"""), "Invalid value: 'User'.", "messages[0].role", "/v1/chat/completions"),
        ["a tool message without tool_call_id"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"42"}]}"""), "messages with role 'tool' must have a 'tool_call_id'", "messages[2].tool_call_id", "/v1/chat/completions"),
        ["a tool message that answers no tool call"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"c1","content":"42"}]}"""), "must be a response to a preceeding message with 'tool_calls'", "messages[1].role", "/v1/chat/completions"),
        ["a user message without content"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"user"}]}"""), "Missing required parameter: 'messages[0].content'.", "messages[0].content", "/v1/chat/completions"),
        ["a user message with null content"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":null}]}"""), "Invalid value for 'content': expected a string, got null.", "messages[0].content", "/v1/chat/completions"),
        ["an unknown content part type"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"video","video":"x"}]}]}"""), "Invalid value: 'video'.", "messages[0].content[0].type", "/v1/chat/completions"),
        ["a content part without a type"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"text":"hi"}]}]}"""), "Missing required parameter: 'messages[0].content[0].type'.", "messages[0].content[0].type", "/v1/chat/completions"),
        ["a text part without text"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"text"}]}]}"""), "Missing required parameter: 'messages[0].content[0].text'.", "messages[0].content[0].text", "/v1/chat/completions"),
        ["an image in a system message"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},{"role":"user","content":"hi"}]}"""), "Image URLs are only allowed for messages with role 'user'", "messages[0]", "/v1/chat/completions"),
        ["a message name with a space"] = (Utf8("""{"model":"gpt-4o-mini","messages":[{"role":"user","name":"Ada Lovelace","content":"hi"}]}"""), "string does not match pattern", "messages[0].name", "/v1/chat/completions"),

        // Tools and sampling parameters.
        ["a tool of an unknown type"] = (Utf8(Chat + ""","tools":[{"type":"retrieval"}]}"""), "Invalid value: 'retrieval'. Supported values are: 'function' and 'custom'.", "tools[0].type", "/v1/chat/completions"),
        ["a tool without a type"] = (Utf8(Chat + ""","tools":[{"function":{"name":"f"}}]}"""), "Missing required parameter: 'tools[0].type'.", "tools[0].type", "/v1/chat/completions"),
        ["a function tool without a name"] = (Utf8(Chat + ""","tools":[{"type":"function","function":{"parameters":{}}}]}"""), "Missing required parameter: 'tools[0].function.name'.", "tools[0].function.name", "/v1/chat/completions"),
        ["a function name with a dot"] = (Utf8(Chat + ""","tools":[{"type":"function","function":{"name":"weather.get"}}]}"""), "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'", "tools[0].function.name", "/v1/chat/completions"),
        ["a function name of 65 characters"] = (Utf8(Chat + $$$""","tools":[{"type":"function","function":{"name":"{{{new string('f', 65)}}}"}}]}"""), "string too long. Expected a string with maximum length 64, but got a string with length 65 instead.", "tools[0].function.name", "/v1/chat/completions"),
        ["Anthropic's tool_choice any"] = (Utf8(Chat + ""","tool_choice":"any"}"""), "Invalid value: 'any'. Supported values are: 'none', 'auto', and 'required'.", "tool_choice", "/v1/chat/completions"),
        ["five stop sequences"] = (Utf8(Chat + ""","stop":["a","b","c","d","e"]}"""), "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length 5 instead.", "stop", "/v1/chat/completions"),
        ["a stop sequence that is a number"] = (Utf8(Chat + ""","stop":[1]}"""), "expected a string, but got a number", "stop[0]", "/v1/chat/completions"),
        ["a logit_bias key that is not a token id"] = (Utf8(Chat + ""","logit_bias":{"hello":5}}"""), "Invalid key in 'logit_bias': hello. You should only be submitting non-negative integers.", "logit_bias", "/v1/chat/completions"),
        ["a logit_bias above 100"] = (Utf8(Chat + ""","logit_bias":{"50256":150}}"""), "between -100 and 100", "logit_bias.50256", "/v1/chat/completions"),
        ["a logit_bias that is not an object"] = (Utf8(Chat + ""","logit_bias":[1,2]}"""), "expected an object, but got an array", "logit_bias", "/v1/chat/completions"),
        ["top_logprobs above 20"] = (Utf8(Chat + ""","logprobs":true,"top_logprobs":21}"""), "between 0 and 20", "top_logprobs", "/v1/chat/completions"),
        ["stream_options without stream"] = (Utf8(Chat + ""","stream_options":{"include_usage":true}}"""), "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", "/v1/chat/completions"),
        ["five stop sequences in a completion"] = (Utf8("""{"model":"gpt-4o-mini","prompt":"x","stop":["a","b","c","d","e"]}"""), "array too long", "stop", "/v1/completions"),
        ["an unknown embedding encoding"] = (Utf8("""{"model":"gpt-4o-mini","input":"x","encoding_format":"int8"}"""), "Invalid value: 'int8'. Supported values are: 'float' and 'base64'.", "encoding_format", "/v1/embeddings"),
    };

    public static TheoryData<string> RawCaseNames() => new(RawCases.Keys);

    [Theory]
    [MemberData(nameof(RawCaseNames))]
    public async Task A_body_openai_would_refuse_gets_a_400_over_a_raw_socket_and_no_upstream_call(string name)
    {
        var (body, message, param, path) = RawCases[name];

        var (status, text) = await RawHttp.PostAsync(_gateway.BaseAddress, path, body);

        Assert.True(status == 400, $"{name}: expected 400, got {status}: {text}");
        using var json = JsonDocument.Parse(text);
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains(message, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        if (param is null)
        {
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        }
        else
        {
            Assert.Equal(param, error.GetProperty("param").GetString());
        }

        Assert.Equal(0, _upstream.RequestCount);
    }

    [Fact]
    public async Task Invalid_utf8_names_the_offset_of_the_first_bad_byte()
    {
        var body = RawHttp.WithBytes("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"@@"}]}""", [0xC0, 0xAF]);

        var (status, text) = await RawHttp.PostAsync(_gateway.BaseAddress, "/v1/chat/completions", body);

        Assert.Equal(400, status);
        Assert.Contains($"at byte {Array.IndexOf(body, (byte)0xC0)})", text, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"invalid_utf8\"", text, StringComparison.Ordinal);
        Assert.Equal(0, _upstream.RequestCount);
    }

    private static byte[] Utf8(string json) => Encoding.UTF8.GetBytes(json);

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

/// <summary>
/// Image URLs sent byte for byte over a socket, as a hostile client would write them (escaped slashes,
/// escaped letters, the bare-string form): every one bound for a deployment that needs bytes is refused
/// with a 400 and the canary behind those URLs never sees a connection.
/// </summary>
[Collection(ModelGateway.Tests.Providers.Media.MediaFetchCollection.Name)]
public sealed class MediaUrlRawInputTests(ModelGateway.Tests.Providers.Media.MediaFetchFixture fixture)
{
    /// <summary>Route, the image_url value as raw JSON ({C}: the canary's port, {I}: the image server's), the error code and what the message says.</summary>
    public static TheoryData<string, string, string, string> Cases => new()
    {
        { "inline-only", """{"url":"https://127.0.0.1:{I}/cat.png"}""", "image_url_not_supported", "need images and documents inline" },
        { "inline-only", """ "https://127.0.0.1:{C}/cat.png" """, "image_url_not_supported", "need images and documents inline" },
        { "inline-only", """{"url":"\u0068ttps://127.0.0.1:{C}/cat.png","detail":"low"}""", "image_url_not_supported", "need images and documents inline" },
        { "strict", """{"url":"http://127.0.0.1:{C}/cat.png"}""", "invalid_image_url", "only https" },
        { "strict", """{"url":"https:\/\/127.0.0.1:{C}\/cat.png"}""", "invalid_image_url", "loopback (127.0.0.0/8)" },
        { "strict", """{"url":"https://[::1]:{C}/cat.png"}""", "invalid_image_url", "loopback (::1)" },
        { "strict", """{"url":"https://169.254.169.254/latest/meta-data/"}""", "invalid_image_url", "cloud metadata" },
        { "strict", """{"url":"https://10.0.0.8/cat.png"}""", "invalid_image_url", "private (10.0.0.0/8)" },
        { "strict", """{"url":"https://localhost:{C}/cat.png"}""", "invalid_image_url", "'localhost' resolves to an address the gateway does not fetch from" },
        { "strict", """{"url":"https://loop.test:{C}/cat.png"}""", "invalid_image_url", "'loop.test' resolves to an address the gateway does not fetch from" },
        { "fetching", """{"url":"https://127.0.0.1:{I}/redirect?to=https%3A%2F%2F127.0.0.2%3A{C}%2Fcat.png"}""", "invalid_image_url", "loopback (127.0.0.0/8)" },
        { "fetching", """{"url":"https://127.0.0.1:{I}/big.png"}""", "invalid_image_url", "more than 65536 bytes" },
        { "slow", """{"url":"https://127.0.0.1:{I}/slow.png"}""", "invalid_image_url", "did not finish downloading within 1s" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task An_image_url_the_gateway_must_not_fetch_gets_a_400_over_a_raw_socket_and_no_connection(string route, string imageUrl, string code, string message)
    {
        var value = imageUrl.Trim()
            .Replace("{C}", fixture.Canary.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{I}", fixture.Images.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        var body = Encoding.UTF8.GetBytes($$"""{"model":"{{route}}","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":""" + value + "}]}]}");

        var (status, text) = await RawHttp.PostAsync(fixture.Gateway.BaseAddress, "/v1/chat/completions", body);

        Assert.True(status == 400, $"{route} {value}: expected 400, got {status}: {text}");
        using var json = JsonDocument.Parse(text);
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Contains(message, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, fixture.Canary.Connections);
    }

    [Fact]
    public async Task An_escaped_data_url_is_still_inline_and_served_without_a_fetch()
    {
        var served = fixture.Images.Requests;
        var escaped = "\\u0064ata:image/png;base64," + Convert.ToBase64String(ModelGateway.Tests.Providers.Media.TlsImageServer.Png);
        var body = Encoding.UTF8.GetBytes("""{"model":"inline-only","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":""" + "\"" + escaped + "\"}}]}]}");

        var (status, text) = await RawHttp.PostAsync(fixture.Gateway.BaseAddress, "/v1/chat/completions", body);

        Assert.True(status == 200, text);
        Assert.Equal(served, fixture.Images.Requests);
    }
}
