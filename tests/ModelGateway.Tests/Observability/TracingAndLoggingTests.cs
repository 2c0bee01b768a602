using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Configuration;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Observability;

/// <summary>Spans, trace propagation and the access log, as an operator relies on them.</summary>
public sealed class TracingAndLoggingTests : IAsyncLifetime
{
    private readonly ConcurrentQueue<Activity> _spans = new();
    private ActivityListener _listener = null!;
    private FakeUpstreamServer _primary = null!;
    private FakeUpstreamServer _secondary = null!;
    private readonly string _route = "traced-" + Guid.NewGuid().ToString("N")[..8];

    public async Task InitializeAsync()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "ModelGateway" or "Microsoft.AspNetCore",
            Sample = static (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _spans.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
        _primary = await FakeUpstreamServer.StartAsync();
        _secondary = await FakeUpstreamServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        _listener.Dispose();
        await _primary.DisposeAsync();
        await _secondary.DisposeAsync();
    }

    private string Config => $$"""
        providers:
          - { name: p1, kind: openai-compatible, baseUrl: "{{_primary.OpenAIBaseUrl}}", apiKey: sk-provider-secret-for-tracing-001 }
          - { name: p2, kind: openai-compatible, baseUrl: "{{_secondary.OpenAIBaseUrl}}" }
        deployments:
          - { name: first, provider: p1, model: first-model, pricing: { input: 1, output: 2 } }
          - { name: second, provider: p2, model: second-model, pricing: { input: 1, output: 2 } }
        routes:
          - { name: {{_route}}, strategy: priority, targets: [first, second] }
        """;

    private List<Activity> AttemptSpans() => [.. _spans.Where(s => s.Source.Name == "ModelGateway" && (string?)s.GetTagItem("modelgateway.route") == _route)];

    [Fact]
    public async Task Each_attempt_is_a_span_under_the_request_with_gen_ai_attributes_and_its_trace_reaches_the_provider()
    {
        await using var gateway = await GatewayHost.StartAsync(Config);
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 503 };

        using var response = await gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{_route}}","max_tokens":50,"messages":[{"role":"user","content":"Hello there"}]}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var spans = AttemptSpans().OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(2, spans.Count);
        var (failed, served) = (spans[0], spans[1]);
        Assert.Equal("chat first-model", failed.DisplayName);
        Assert.Equal(ActivityKind.Client, failed.Kind);
        Assert.Equal(ActivityStatusCode.Error, failed.Status);
        Assert.Equal(503, failed.GetTagItem("http.response.status_code"));
        Assert.Equal(1, failed.GetTagItem("modelgateway.attempt"));
        Assert.Equal(2, served.GetTagItem("modelgateway.attempt"));
        Assert.Equal("chat", served.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("openai_compatible", served.GetTagItem("gen_ai.provider.name"));
        Assert.Equal("second-model", served.GetTagItem("gen_ai.request.model"));
        Assert.Equal("second-model", served.GetTagItem("gen_ai.response.model"));
        Assert.Equal(50, served.GetTagItem("gen_ai.request.max_tokens"));
        Assert.True((long)served.GetTagItem("gen_ai.usage.output_tokens")! > 0);
        Assert.Equal(["stop"], (string[])served.GetTagItem("gen_ai.response.finish_reasons")!);
        Assert.Equal("second", served.GetTagItem("modelgateway.deployment"));
        Assert.Null(served.GetTagItem("gen_ai.input.messages"));

        // Both attempts hang off the request's server span, and the provider got the attempt's trace context.
        var server = _spans.Single(s => s.Source.Name == "Microsoft.AspNetCore" && s.SpanId == served.ParentSpanId);
        Assert.Equal(default, server.ParentSpanId);
        Assert.Equal(server.SpanId, failed.ParentSpanId);
        var traceparent = Assert.Single(_secondary.Requests).Headers["traceparent"];
        Assert.StartsWith($"00-{served.TraceId.ToHexString()}-", traceparent, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-provider-secret-for-tracing-001", string.Join(' ', _spans.SelectMany(s => s.TagObjects).Select(t => t.Value?.ToString())), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prompts_and_completions_are_on_spans_only_when_content_capture_is_on()
    {
        await using var gateway = await GatewayHost.StartAsync(Config, new Dictionary<string, string?> { ["Observability:CaptureContent"] = "true" });

        using var response = await gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{_route}}","messages":[{"role":"user","content":"Tell me a secret plan"}]}""");

        var span = Assert.Single(AttemptSpans());
        Assert.Contains("Tell me a secret plan", (string)span.GetTagItem("gen_ai.input.messages")!, StringComparison.Ordinal);
        Assert.Contains("Hello from first-model", (string)span.GetTagItem("gen_ai.output.messages")!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task One_access_log_line_per_request_with_the_facts_and_without_secrets_or_prompts()
    {
        const string master = "mk-access-log-test";
        await using var gateway = await GatewayHost.StartAsync(Config, new Dictionary<string, string?> { ["Auth:Mode"] = "keys", ["Admin:MasterKey"] = master });
        using var create = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json("""{"name":"reporting-job","team":"analytics"}""") };
        create.Headers.Authorization = new("Bearer", master);
        using var created = await gateway.Http.SendAsync(create);
        var secret = System.Text.Json.JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;

        using var response = await gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{_route}}","messages":[{"role":"user","content":"my confidential prompt"}]}""",
            bearer: secret, headers: h => h.Add("x-request-id", "access-log-probe-1"));

        var lines = await gateway.Logs.WaitForLinesAsync(l => l.Contains("ModelGateway.AccessLog", StringComparison.Ordinal) && l.Contains("access-log-probe-1", StringComparison.Ordinal));
        Assert.True(lines.Count == 1, $"expected one access-log line for the probe; the response was {(int)response.StatusCode} and the log held:\n{gateway.Logs.All}");
        var line = lines[0];
        foreach (var fact in new[] { "key=reporting-job", "team=analytics", $"route={_route}", "deployment=first", "status=200", "attempts=1", "cost=", "ttft=", "latency=" })
        {
            Assert.Contains(fact, line.Replace("\"", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
        }

        Assert.DoesNotContain(secret, gateway.Logs.All, StringComparison.Ordinal);
        Assert.DoesNotContain("my confidential prompt", gateway.Logs.All, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-provider-secret-for-tracing-001", gateway.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Log_levels_change_at_runtime_when_the_configuration_reloads()
    {
        var settings = Path.Combine(Directory.CreateTempSubdirectory("modelgateway-logging-").FullName, "logging.json");
        await File.WriteAllTextAsync(settings, """{ "Serilog": { "MinimumLevel": { "Override": { "ModelGateway.AccessLog": "Warning" } } } }""");
        await using var gateway = await GatewayHost.StartAsync(Config, configure: builder => builder.Configuration.AddJsonFile(settings, optional: false, reloadOnChange: true));

        (await gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{_route}}","messages":[{"role":"user","content":"hi"}]}""", headers: h => h.Add("x-request-id", "quiet-1"))).Dispose();
        await File.WriteAllTextAsync(settings, """{ "Serilog": { "MinimumLevel": { "Override": { "ModelGateway.AccessLog": "Information" } } } }""");

        var clock = Stopwatch.StartNew();
        var probe = 0;
        while (!gateway.Logs.Lines.Any(l => l.Contains("loud-", StringComparison.Ordinal)))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), "the new level was not applied");
            (await gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{_route}}","messages":[{"role":"user","content":"hi"}]}""", headers: h => h.Add("x-request-id", $"loud-{probe++}"))).Dispose();
            await Task.Delay(100);
        }

        Assert.DoesNotContain(gateway.Logs.Lines, l => l.Contains("quiet-1", StringComparison.Ordinal));
    }
}
