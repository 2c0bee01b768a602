using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Observability;

/// <summary>
/// Two gateway replicas on one fake upstream, scraped every second by a real Prometheus that runs the
/// shipped <c>deploy/prometheus</c> files, after traffic that gives every dashboard panel something to
/// show: chat plain and streamed, embeddings, failovers, an open circuit, upstream 429s, a hedge, a
/// continued and an interrupted stream, a route with no working deployment, a spent retry budget,
/// key rate limits and budgets, and spend. Built once and shared by the dashboard tests.
/// </summary>
/// <remarks>
/// The replicas run as their own processes, not in-process hosts: OpenTelemetry subscribes to meters
/// by name process-wide, so an in-process host's /metrics would also count every other gateway in the
/// test process (the second replica, and other test classes running in parallel), and observable
/// gauges such as the circuit state of equally named deployments would overwrite each other.
/// </remarks>
public sealed class ScrapedGateway : IAsyncLifetime
{
    private const string MasterKey = "mk-dashboard-test-4b7e19";

    // Prices in USD per million tokens, so that spend is visible.
    private const string RoutingYaml = """
        providers:
          - { name: east, kind: openai-compatible, baseUrl: "{{upstream}}" }
          - { name: west, kind: openai-compatible, baseUrl: "{{upstream}}" }
        defaults:
          circuitBreaker: { consecutiveFailures: 0, minimumThroughput: 1000 }
        deployments:
          - { name: chat-east, provider: east, model: chat-east-model, pricing: { input: 2.5, output: 10 } }
          - { name: chat-west, provider: west, model: chat-west-model, pricing: { input: 3, output: 12 }, capabilities: [chat, prefill] }
          - name: broken-east
            provider: east
            model: broken-model
            pricing: { input: 1, output: 1 }
            circuitBreaker: { consecutiveFailures: 2, minimumThroughput: 1000, breakDuration: 10m }
          - { name: throttled-east, provider: east, model: throttled-model, pricing: { input: 1, output: 1 } }
          - { name: slow-east, provider: east, model: slow-model, pricing: { input: 1, output: 1 } }
          - { name: reset-east, provider: east, model: reset-model, pricing: { input: 1, output: 1 } }
          - { name: dead-east, provider: east, model: dead-model }
          - { name: dead-west, provider: west, model: dead-model-2 }
          - { name: embed-west, provider: west, model: embed-model, pricing: { input: 0.02, output: 0 }, capabilities: [embeddings] }
          - { name: gpu-east, provider: east, model: llama-model, capacity: 4, pricing: { perHour: 2.4 } }
        routes:
          - { name: chat, strategy: priority, targets: [chat-east, chat-west], affinity: { minPrefixTokens: 1 } }
          - { name: failover, strategy: priority, targets: [broken-east, chat-west] }
          - { name: throttled, strategy: priority, targets: [throttled-east, chat-east] }
          - { name: hedged, strategy: priority, targets: [slow-east, chat-west], resilience: { hedging: { delay: 100ms, maxAttempts: 2 } } }
          - { name: resumed, strategy: priority, targets: [reset-east, chat-west], resilience: { continuation: true } }
          - { name: interrupted, strategy: priority, targets: [reset-east, chat-west] }
          - { name: doomed, strategy: priority, targets: [dead-east, dead-west], resilience: { backoff: 10ms, maxBackoff: 20ms } }
          - { name: embed, targets: [embed-west] }
          - { name: cached, targets: [chat-east], cache: { ttl: 1h, scope: global } }
        """;

    private readonly string _directory = Directory.CreateTempSubdirectory("modelgateway-prometheus-").FullName;
    private readonly Dictionary<string, string> _keys = [];
    private FakeUpstreamServer _upstream = null!;
    private int _sent;
    private Stopwatch? _sinceThrottled;

    /// <summary>The repository checkout the test runs from (holds <c>deploy/</c>).</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>Replica with keys, key labels on metrics and the default retry budget.</summary>
    internal GatewayProcess Primary { get; private set; } = null!;

    /// <summary>Replica without keys and with a retry budget of nothing, so that it refuses every failover.</summary>
    internal GatewayProcess Secondary { get; private set; } = null!;

    /// <summary>A replica's scrape address, as Prometheus labels it (<c>instance</c>).</summary>
    internal static string Instance(GatewayProcess gateway) => $"127.0.0.1:{gateway.Port}";

    internal PrometheusServer Prometheus { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        _upstream.DefaultBehavior = new UpstreamBehavior { ChunkCount = 12, ChunkDelay = TimeSpan.FromMilliseconds(5) };
        _upstream.SetBehaviorForModel("broken-model", new UpstreamBehavior { StatusCode = 500 });
        _upstream.SetBehaviorForModel("throttled-model", new UpstreamBehavior { StatusCode = 429, Headers = new Dictionary<string, string> { ["retry-after"] = "1" } });
        _upstream.SetBehaviorForModel("slow-model", new UpstreamBehavior { FirstChunkDelay = TimeSpan.FromSeconds(5) });
        _upstream.SetBehaviorForModel("reset-model", new UpstreamBehavior { ChunkCount = 8, Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 3 });
        _upstream.SetBehaviorForModel("dead-model", new UpstreamBehavior { StatusCode = 503 });
        _upstream.SetBehaviorForModel("dead-model-2", new UpstreamBehavior { StatusCode = 503 });

        var routing = Path.Combine(_directory, "routing.yaml");
        await File.WriteAllTextAsync(routing, RoutingYaml.Replace("{{upstream}}", _upstream.OpenAIBaseUrl.ToString(), StringComparison.Ordinal));
        var primary = GatewayProcess.StartAsync(routing, new Dictionary<string, string>
        {
            ["Auth:Mode"] = "keys",
            ["Admin:MasterKey"] = MasterKey,
            ["Observability:KeyLabels"] = "true",
            ["Observability:AccessLog"] = "false",
        });
        var secondary = GatewayProcess.StartAsync(routing, new Dictionary<string, string>
        {
            ["Auth:Mode"] = "none",
            ["Gateway:RetryBudgetRatio"] = "0.01",
            ["Gateway:RetryBudgetMinimumPerSecond"] = "0",
            ["Observability:AccessLog"] = "false",
        });
        try
        {
            Primary = await primary;
        }
        finally
        {
            // Kept even when the other failed, so that DisposeAsync stops it.
            Secondary = await secondary;
        }

        await CreateKeyAsync("app", """{"name":"app","team":"search"}""");
        await CreateKeyAsync("limited", """{"name":"limited","team":"batch","rpm":2}""");
        await CreateKeyAsync("budgeted", """{"name":"budgeted","team":"batch","budget_daily_usd":0.000001}""");
        await CreateKeyAsync("embed-only", """{"name":"embed-only","team":"batch","models":["embed"]}""");

        Prometheus = await PrometheusServer.StartAsync(WritePrometheusConfig(), Path.Combine(_directory, "data"));
        await Prometheus.WaitUntilAsync("up{job=\"modelgateway\"} == 1", r => r.Count == 2, TimeSpan.FromSeconds(30), "both replicas scraped");

        // Counters appear in /metrics only after their first increment, and rate() needs an increase
        // between two scrapes: one round creates every series, a second one after a scrape moves them.
        for (var round = 0; round < 2; round++)
        {
            await DriveTrafficAsync();
            var sent = _sent;
            await Prometheus.WaitUntilAsync("sum(modelgateway_requests_total)", r => r.Count == 1 && r[0].Value >= sent, TimeSpan.FromSeconds(30),
                $"round {round + 1}: all {sent} requests scraped");
        }
    }

    public async Task DisposeAsync()
    {
        if (Prometheus is not null)
        {
            await Prometheus.DisposeAsync();
        }

        if (Primary is not null)
        {
            await Primary.DisposeAsync();
        }

        if (Secondary is not null)
        {
            await Secondary.DisposeAsync();
        }

        if (_upstream is not null)
        {
            await _upstream.DisposeAsync();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Prometheus may still be closing its files; the OS cleans temp folders.
        }
    }

    /// <summary>
    /// The shipped prometheus.yml with the scrape target pointed at both replicas and the intervals at 1s;
    /// the shipped alerts.yml beside it.
    /// </summary>
    private string WritePrometheusConfig()
    {
        var deploy = Path.Combine(RepositoryRoot, "deploy", "prometheus");
        var config = File.ReadAllText(Path.Combine(deploy, "prometheus.yml"));
        config = ReplaceOnce(config, "scrape_interval: 15s", "scrape_interval: 1s");
        config = ReplaceOnce(config, "evaluation_interval: 15s", "evaluation_interval: 1s");
        config = ReplaceOnce(config, "- localhost:8080", $"- {Instance(Primary)}\n          - {Instance(Secondary)}");
        var path = Path.Combine(_directory, "prometheus.yml");
        File.WriteAllText(path, config);
        File.Copy(Path.Combine(deploy, "alerts.yml"), Path.Combine(_directory, "alerts.yml"));
        return path;
    }

    private static string ReplaceOnce(string text, string old, string replacement)
    {
        var at = text.IndexOf(old, StringComparison.Ordinal);
        Assert.True(at >= 0 && text.IndexOf(old, at + 1, StringComparison.Ordinal) < 0, $"deploy/prometheus/prometheus.yml should hold '{old}' exactly once");
        return string.Concat(text.AsSpan(0, at), replacement, text.AsSpan(at + old.Length));
    }

    private async Task DriveTrafficAsync()
    {
        var app = _keys["app"];

        // Plain and streamed chat; embeddings.
        await ExpectAsync(Primary, "chat", app, stream: false, HttpStatusCode.OK, servedBy: "chat-east");
        await ExpectAsync(Primary, "chat", app, stream: true, HttpStatusCode.OK, servedBy: "chat-east");
        await ExpectAsync(Secondary, "chat", null, stream: true, HttpStatusCode.OK, servedBy: "chat-east");
        await ExpectAsync(Primary, "embed", app, stream: false, HttpStatusCode.OK, servedBy: "embed-west", path: "v1/embeddings");

        // A cached route asked the same thing twice: a miss, then a hit (which saves the first answer's cost).
        await ExpectAsync(Primary, "cached", app, stream: false, HttpStatusCode.OK);
        await ExpectAsync(Primary, "cached", app, stream: true, HttpStatusCode.OK);

        // The first deployment answers 500: failed over to the second; two in a row open its circuit,
        // after which it is skipped.
        await ExpectAsync(Primary, "failover", app, stream: false, HttpStatusCode.OK, servedBy: "chat-west");
        await ExpectAsync(Primary, "failover", app, stream: true, HttpStatusCode.OK, servedBy: "chat-west");

        // The provider answers 429: failed over. The 429 cools the deployment down for a second; past
        // that, the next round asks it again.
        if (_sinceThrottled is { Elapsed: var elapsed } && elapsed < TimeSpan.FromSeconds(1.5))
        {
            await Task.Delay(TimeSpan.FromSeconds(1.5) - elapsed);
        }

        await ExpectAsync(Primary, "throttled", app, stream: false, HttpStatusCode.OK, servedBy: "chat-east");
        _sinceThrottled = Stopwatch.StartNew();

        // A slow first token: hedged on the second deployment, which wins.
        await ExpectAsync(Primary, "hedged", app, stream: true, HttpStatusCode.OK, servedBy: "chat-west");

        // A stream that breaks mid-way: continued on a prefill deployment, or, without the option, interrupted.
        await ExpectAsync(Primary, "resumed", app, stream: true, HttpStatusCode.OK, servedBy: "reset-east");
        await ExpectAsync(Primary, "interrupted", app, stream: true, HttpStatusCode.OK, servedBy: "reset-east");

        // Every deployment of the route fails; on the secondary, the retry budget refuses the failover.
        await ExpectAsync(Primary, "doomed", app, stream: false, HttpStatusCode.ServiceUnavailable);
        await ExpectAsync(Secondary, "doomed", null, stream: false, HttpStatusCode.ServiceUnavailable);
        await ExpectAsync(Secondary, "doomed", null, stream: false, HttpStatusCode.ServiceUnavailable);

        // Key limits: rpm 2, a daily budget of a millionth of a dollar, a key for embeddings only.
        for (var i = 0; i < 3; i++)
        {
            await SendAsync(Primary, "chat", _keys["limited"], stream: false);
        }

        await ExpectAsync(Primary, "chat", _keys["limited"], stream: false, HttpStatusCode.TooManyRequests);
        await SendAsync(Primary, "chat", _keys["budgeted"], stream: false);
        await ExpectAsync(Primary, "chat", _keys["budgeted"], stream: false, HttpStatusCode.TooManyRequests);
        await ExpectAsync(Primary, "chat", _keys["embed-only"], stream: false, HttpStatusCode.Forbidden);
    }

    private async Task ExpectAsync(GatewayProcess gateway, string model, string? key, bool stream, HttpStatusCode status, string? servedBy = null, string path = "v1/chat/completions")
    {
        var (actual, deployment, body) = await SendAsync(gateway, model, key, stream, path);
        Assert.True(actual == status && (servedBy is null || deployment == servedBy),
            $"{model} (stream {stream}): expected {(int)status} from {servedBy ?? "any"}, got {(int)actual} from {deployment ?? "none"}: {body}");
    }

    private async Task<(HttpStatusCode Status, string? Deployment, string Body)> SendAsync(GatewayProcess gateway, string model, string? key, bool stream, string path = "v1/chat/completions")
    {
        var json = path.EndsWith("embeddings", StringComparison.Ordinal)
            ? $$"""{"model":"{{model}}","input":"The quick brown fox jumps over the lazy dog."}"""
            : $$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"Tell me about the quick brown fox."}]}""";
        Interlocked.Increment(ref _sent);
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = GatewayHost.Json(json) };
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        using var response = await gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var received = new MemoryStream();
        try
        {
            await (await response.Content.ReadAsStreamAsync()).CopyToAsync(received);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            // An interrupted stream ends with an error event and an abort; the metrics are what matter here.
        }

        var deployment = response.Headers.TryGetValues("x-modelgateway-deployment", out var values) ? values.Single() : null;
        return (response.StatusCode, deployment, Encoding.UTF8.GetString(received.ToArray()));
    }

    private async Task CreateKeyAsync(string name, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json(json) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await Primary.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{response.StatusCode}: {body}");
        using var document = JsonDocument.Parse(body);
        _keys[name] = document.RootElement.GetProperty("key").GetString()!;
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ModelGateway.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("ModelGateway.sln not found above " + AppContext.BaseDirectory);
    }
}
