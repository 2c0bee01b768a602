using System.Net.Http.Headers;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Observability;

/// <summary>One gateway with keys on, shared by the access-log tests; each request carries its own id.</summary>
public sealed class AccessLogFixture : IAsyncLifetime
{
    public const string MasterKey = "mk-access-log-master-5d7e1f";

    public FakeUpstreamServer Upstream { get; private set; } = null!;

    internal GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await FakeUpstreamServer.StartAsync();
        Gateway = await GatewayHost.StartAsync(TestConfigs.SingleOpenAI(Upstream, extraRoute: "  - { name: gpt-4o, targets: [primary] }"), new Dictionary<string, string?>
        {
            ["Auth:Mode"] = "keys",
            ["Admin:MasterKey"] = MasterKey,
            ["Gateway:MaxRequestBodyBytes"] = "65536",
        });
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Upstream.DisposeAsync();
    }
}

/// <summary>
/// Every request gets exactly one access-log line, refused ones included, so an operator can see
/// credential stuffing, scans and limits in the log; a line never holds key material.
/// </summary>
public sealed class AccessLogTests(AccessLogFixture fixture) : IClassFixture<AccessLogFixture>
{
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";
    private readonly GatewayHost _gateway = fixture.Gateway;

    [Fact]
    public async Task A_refused_key_is_logged_with_the_reason_and_without_any_key_material()
    {
        var revoked = await CreateKeyAsync("""{"name":"revoked-job"}""");
        using (var revoke = await AdminAsync(HttpMethod.Delete, $"admin/keys/{revoked.Id}"))
        {
            Assert.True(revoke.IsSuccessStatusCode);
        }

        const string stolen = "sk-mg-stolen-credential-0123456789abcdef";
        const string wrongMaster = "mk-guessed-master-key-fedcba9876543210";
        var missing = await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat, bearer: null);
        var unknown = await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat, bearer: stolen);
        var revokedCall = await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat, bearer: revoked.Secret);
        var azureStyle = await SendAsync(HttpMethod.Get, "v1/models", null, bearer: null, headers: h => h.Add("api-key", stolen));
        var admin = await SendAsync(HttpMethod.Get, "admin/keys", null, bearer: wrongMaster);

        AssertFacts(await LineAsync(missing), "status=401", "reason=missing_key", "error=invalid_request_error", "/v1/chat/completions");
        AssertFacts(await LineAsync(unknown), "status=401", "reason=unknown_key", "error=invalid_api_key");
        AssertFacts(await LineAsync(revokedCall), "status=401", "reason=revoked_key", "error=invalid_api_key");
        AssertFacts(await LineAsync(azureStyle), "status=401", "reason=unknown_key", "GET /v1/models");
        AssertFacts(await LineAsync(admin), "status=401", "reason=wrong_master_key", "GET /admin/keys");

        var log = _gateway.Logs.All;
        foreach (var secret in new[] { stolen, wrongMaster, revoked.Secret, AccessLogFixture.MasterKey })
        {
            Assert.DoesNotContain(secret, log, StringComparison.Ordinal);

            // Nor the hint the client's own error message carries (its first 8 and last 4 characters).
            Assert.DoesNotContain(secret[..8] + "…", log, StringComparison.Ordinal);
            Assert.DoesNotContain("…" + secret[^4..], log, StringComparison.Ordinal);
        }
    }

    public static TheoryData<string> Refusals() => new("403 model_not_allowed", "404 unknown_url", "404 model_not_found", "405 method_not_allowed", "413 request_too_large", "429 rate_limit_exceeded", "400 invalid_value");

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task Every_refusal_gets_exactly_one_line_with_its_status_and_error(string refusal)
    {
        var key = await CreateKeyAsync("""{"name":"limited","team":"ops","models":["gpt-4o-mini"],"rpm":1}""");
        var id = refusal switch
        {
            "403 model_not_allowed" => await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat.Replace("gpt-4o-mini", "gpt-4o", StringComparison.Ordinal), key.Secret),
            "404 unknown_url" => await SendAsync(HttpMethod.Get, "v1/assistants", null, key.Secret),
            "404 model_not_found" => await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat.Replace("gpt-4o-mini", "no-such-model", StringComparison.Ordinal), key.Secret),
            "405 method_not_allowed" => await SendAsync(HttpMethod.Get, "v1/chat/completions", null, key.Secret),
            "413 request_too_large" => await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat.Replace("hi", new string('x', 70_000), StringComparison.Ordinal), key.Secret),
            "429 rate_limit_exceeded" => await SendTwiceAsync(key.Secret),
            "400 invalid_value" => await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat.Replace("user", "wizard", StringComparison.Ordinal), key.Secret),
            _ => throw new ArgumentOutOfRangeException(nameof(refusal)),
        };

        var (status, error) = (refusal[..3], refusal[4..]);
        AssertFacts(await LineAsync(id), $"status={status}", $"error={error}");
        if (status != "404" && status != "405")
        {
            // A refusal after authentication names the key (never its secret) and its team.
            AssertFacts(await LineAsync(id), "key=limited", "team=ops");
        }

        Assert.DoesNotContain(key.Secret, _gateway.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_rate_limited_request_says_which_limit_refused_it()
    {
        var key = await CreateKeyAsync("""{"name":"one-a-minute","rpm":1}""");

        var id = await SendTwiceAsync(key.Secret);

        AssertFacts(await LineAsync(id), "status=429", "error=rate_limit_exceeded", "reason=requests");
    }

    [Fact]
    public async Task Requests_that_are_not_model_calls_get_their_line_too()
    {
        var key = await CreateKeyAsync("""{"name":"lister"}""");

        var models = await SendAsync(HttpMethod.Get, "v1/models", null, key.Secret);
        var live = await SendAsync(HttpMethod.Get, "healthz/live", null, bearer: null);
        var admin = await SendAsync(HttpMethod.Get, "admin/keys", null, AccessLogFixture.MasterKey);

        AssertFacts(await LineAsync(models), "GET /v1/models", "key=lister", "status=200", "latency=");
        AssertFacts(await LineAsync(live), "GET /healthz/live", "status=200");
        AssertFacts(await LineAsync(admin), "GET /admin/keys", "status=200");
    }

    [Fact]
    public async Task A_model_call_gets_only_its_own_full_line()
    {
        var key = await CreateKeyAsync("""{"name":"chatty"}""");

        var id = await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat, key.Secret);

        var line = await LineAsync(id);
        AssertFacts(line, "key=chatty", "route=gpt-4o-mini", "deployment=primary", "status=200", "attempts=1");
        Assert.DoesNotContain("POST /v1/chat/completions", line, StringComparison.Ordinal);
    }

    private async Task<string> SendTwiceAsync(string secret)
    {
        await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat, secret);
        return await SendAsync(HttpMethod.Post, "v1/chat/completions", Chat, secret);
    }

    /// <summary>Sends a request with a fresh id; returns the id.</summary>
    private async Task<string> SendAsync(HttpMethod method, string path, string? json, string? bearer, Action<HttpRequestHeaders>? headers = null)
    {
        var id = "al-" + Guid.NewGuid().ToString("N");
        using var request = new HttpRequestMessage(method, path) { Content = json is null ? null : GatewayHost.Json(json) };
        request.Headers.Add("x-request-id", id);
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        headers?.Invoke(request.Headers);
        using var response = await _gateway.Http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        return id;
    }

    /// <summary>The one access-log line of request <paramref name="id"/>; fails when there is none or more than one.</summary>
    private async Task<string> LineAsync(string id)
    {
        var lines = await _gateway.Logs.WaitForLinesAsync(l => l.Contains("ModelGateway.AccessLog", StringComparison.Ordinal) && l.Contains(id, StringComparison.Ordinal));
        Assert.True(lines.Count == 1, $"expected one access-log line for {id}, found {lines.Count}:\n{string.Join('\n', lines)}");

        // Structured values are quoted when rendered through the test's logger provider.
        return lines[0].Replace("\"", string.Empty, StringComparison.Ordinal);
    }

    private static void AssertFacts(string line, params string[] facts)
    {
        foreach (var fact in facts)
        {
            Assert.True(line.Contains(fact, StringComparison.Ordinal), $"'{fact}' is missing from the line: {line}");
        }
    }

    private async Task<(string Id, string Secret)> CreateKeyAsync(string json)
    {
        using var response = await AdminAsync(HttpMethod.Post, "admin/keys", json);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        using var document = JsonDocument.Parse(text);
        return (document.RootElement.GetProperty("id").GetString()!, document.RootElement.GetProperty("key").GetString()!);
    }

    private async Task<HttpResponseMessage> AdminAsync(HttpMethod method, string path, string? json = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = json is null ? null : GatewayHost.Json(json) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AccessLogFixture.MasterKey);
        return await _gateway.Http.SendAsync(request);
    }
}
