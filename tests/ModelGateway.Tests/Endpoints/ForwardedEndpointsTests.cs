using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Endpoints;

/// <summary>
/// The OpenAI endpoints the gateway forwards without interpreting (images, audio, moderations, files,
/// batches), through the real host with keys: each reaches a deployment that declares its capability,
/// with the key's allow-list and request rate applied and usage recorded where the answer carries it;
/// an endpoint no deployment declares keeps its 404.
/// </summary>
public sealed class ForwardedEndpointsTests : IAsyncLifetime
{
    private const string MasterKey = "mk-forwarded-endpoints-4b7c9d";
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: openai, kind: openai, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: chat-dep, provider: openai, model: gpt-4.1 }
              - name: image-dep
                provider: openai
                model: gpt-image-1
                capabilities: [images, moderations]
                pricing: { input: 5, output: 40 }
              - { name: whisper-dep, provider: openai, model: whisper-1, capabilities: [audio] }
              - { name: files-dep, provider: openai, model: gpt-4.1-mini, capabilities: [chat, files] }
            routes:
              - { name: chat, targets: [chat-dep] }
              - { name: image, targets: [image-dep] }
              - { name: whisper-1, targets: [whisper-dep] }
              - { name: batch-files, targets: [files-dep] }
            """, new Dictionary<string, string?> { ["Auth:Mode"] = "keys", ["Admin:MasterKey"] = MasterKey });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task An_image_request_reaches_the_declaring_deployment_with_its_model_and_its_usage_is_recorded()
    {
        var key = await CreateKeyAsync("""{"name":"artist"}""");

        using var response = await SendAsync(HttpMethod.Post, "v1/images/generations", key, Json("""{"model":"image","prompt":"a lighthouse","size":"1024x1024"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("image-dep", response.Headers.GetValues("x-modelgateway-deployment").Single());
        var answer = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.NotNull(answer["data"]![0]!["b64_json"]);
        var sent = _upstream.Requests.Single(r => r.Path == "/v1/images/generations");
        Assert.Equal("gpt-image-1", sent.Json!["model"]!.GetValue<string>());
        Assert.Equal("a lighthouse", sent.Json!["prompt"]!.GetValue<string>());
        Assert.Equal("Bearer " + TestConfigs.ProviderKey, Header(sent, "Authorization"));

        var row = (await UsageAsync("admin/usage?group_by=deployment")).Single(r => r.GetProperty("deployment").GetString() == "image-dep");
        Assert.Equal(1, row.GetProperty("requests").GetInt64());
        Assert.Equal(12, row.GetProperty("input_tokens").GetInt64());
        Assert.Equal(272, row.GetProperty("output_tokens").GetInt64());
        Assert.True(row.GetProperty("cost_usd").GetDouble() > 0);
    }

    [Fact]
    public async Task A_multipart_transcription_passes_through_byte_for_byte_to_the_audio_deployment()
    {
        var key = await CreateKeyAsync("""{"name":"listener"}""");
        using var form = new MultipartFormDataContent("gateway-test-boundary");
        form.Add(new StringContent("whisper-1"), "model");
        var audio = new ByteArrayContent([0x49, 0x44, 0x33, 0x04, 0x00, 0xFF, 0xFE, 0x00, 0x10]);
        audio.Headers.ContentType = new MediaTypeHeaderValue("audio/mpeg");
        form.Add(audio, "file", "hello.mp3");
        var bytes = await form.ReadAsByteArrayAsync();
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = form.Headers.ContentType;

        using var response = await SendAsync(HttpMethod.Post, "v1/audio/transcriptions", key, content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("whisper-dep", response.Headers.GetValues("x-modelgateway-deployment").Single());
        var sent = _upstream.Requests.Single(r => r.Path == "/v1/audio/transcriptions");
        Assert.Equal(bytes, sent.Body);
        Assert.StartsWith("multipart/form-data", Header(sent, "Content-Type"), StringComparison.Ordinal);
        Assert.Contains("gateway-test-boundary", Header(sent, "Content-Type"), StringComparison.Ordinal);
        var row = (await UsageAsync("admin/usage?group_by=deployment")).Single(r => r.GetProperty("deployment").GetString() == "whisper-dep");
        Assert.Equal(45, row.GetProperty("output_tokens").GetInt64());
    }

    [Fact]
    public async Task Files_are_uploaded_read_and_deleted_on_the_one_deployment_that_declares_them()
    {
        var key = await CreateKeyAsync("""{"name":"batcher"}""");
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent("batch"), "purpose");
        form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes("""{"custom_id":"1","method":"POST","url":"/v1/chat/completions","body":{}}""" + "\n")), "file", "input.jsonl");

        using var upload = await SendAsync(HttpMethod.Post, "v1/files", key, form);
        var id = JsonNode.Parse(await upload.Content.ReadAsStringAsync())!["id"]!.GetValue<string>();
        using var read = await SendAsync(HttpMethod.Get, $"v1/files/{id}/content", key);
        using var deleted = await SendAsync(HttpMethod.Delete, $"v1/files/{id}", key);

        Assert.Equal(HttpStatusCode.OK, upload.StatusCode);
        Assert.Equal("files-dep", upload.Headers.GetValues("x-modelgateway-deployment").Single());
        Assert.Contains("custom_id", await read.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        Assert.True(JsonNode.Parse(await deleted.Content.ReadAsStringAsync())!["deleted"]!.GetValue<bool>());
    }

    [Fact]
    public async Task An_endpoint_no_deployment_declares_keeps_its_404_and_none_is_forwarded_without_a_key()
    {
        var key = await CreateKeyAsync("""{"name":"curious"}""");

        using var batches = await SendAsync(HttpMethod.Post, "v1/batches", key, Json("""{"input_file_id":"file-1","endpoint":"/v1/chat/completions","completion_window":"24h"}"""));
        using var anonymous = await SendAsync(HttpMethod.Post, "v1/moderations", null, Json("""{"model":"image","input":"hello"}"""));
        using var noCapability = await SendAsync(HttpMethod.Post, "v1/moderations", key, Json("""{"model":"chat","input":"hello"}"""));

        Assert.Equal(HttpStatusCode.NotFound, batches.StatusCode);
        Assert.Equal("unknown_url", (await ErrorAsync(batches))["code"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, noCapability.StatusCode);
        Assert.Equal("unsupported_capability", (await ErrorAsync(noCapability))["code"]!.GetValue<string>());
        Assert.DoesNotContain(_upstream.Requests, r => r.Path is "/v1/batches" or "/v1/moderations");
    }

    [Fact]
    public async Task A_keys_model_allow_list_and_request_rate_apply_as_on_chat()
    {
        var imagesOnly = await CreateKeyAsync("""{"name":"images-only","models":["image"],"rpm":1}""");

        using var first = await SendAsync(HttpMethod.Post, "v1/moderations", imagesOnly, Json("""{"model":"image","input":"hello"}"""));
        using var limited = await SendAsync(HttpMethod.Post, "v1/moderations", imagesOnly, Json("""{"model":"image","input":"again"}"""));
        using var otherModel = await SendAsync(HttpMethod.Post, "v1/audio/transcriptions", imagesOnly, Json("""{"model":"whisper-1"}"""));
        using var files = await SendAsync(HttpMethod.Get, "v1/files", imagesOnly);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("omni-moderation-latest", JsonNode.Parse(await first.Content.ReadAsStringAsync())!["model"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, otherModel.StatusCode);
        Assert.Equal("model_not_allowed", (await ErrorAsync(otherModel))["code"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.Forbidden, files.StatusCode);
        Assert.Single(_upstream.Requests, r => r.Path == "/v1/moderations");
        Assert.DoesNotContain(_upstream.Requests, r => r.Path.StartsWith("/v1/audio", StringComparison.Ordinal) || r.Path.StartsWith("/v1/files", StringComparison.Ordinal));
    }

    private static string Header(RecordedRequest request, string name)
        => request.Headers.First(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? key, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return await _gateway.Http.SendAsync(request);
    }

    private async Task<string> CreateKeyAsync(string json)
    {
        using var response = await SendAsync(HttpMethod.Post, "admin/keys", MasterKey, Json(json));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
    }

    private async Task<List<JsonElement>> UsageAsync(string path)
    {
        using var response = await SendAsync(HttpMethod.Get, path, MasterKey);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("data").EnumerateArray().Select(e => e.Clone()).ToList();
    }

    private static async Task<JsonNode> ErrorAsync(HttpResponseMessage response)
        => JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
}
