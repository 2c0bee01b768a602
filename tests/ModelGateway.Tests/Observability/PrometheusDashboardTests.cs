using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ModelGateway.Tests.Observability;

/// <summary>
/// The shipped Grafana dashboard and Prometheus files against a real gateway scraped by a real
/// Prometheus: every panel query returns data, the variables list values and filter every query, the
/// alert rules evaluate and fire on the failures driven, and promtool accepts the files.
/// </summary>
public sealed partial class PrometheusDashboardTests(ScrapedGateway scraped) : IClassFixture<ScrapedGateway>
{
    private static readonly string DashboardPath = Path.Combine(ScrapedGateway.RepositoryRoot, "deploy", "grafana", "modelgateway-dashboard.json");
    private static readonly string PrometheusDirectory = Path.Combine(ScrapedGateway.RepositoryRoot, "deploy", "prometheus");
    private static readonly string[] FilterVariables = ["$instance", "$route", "$provider", "$deployment"];

    // Gauges of work in flight: after the traffic has finished, zero is the right answer.
    private static readonly string[] MayBeZero = ["modelgateway_requests_active", "modelgateway_streams_active", "modelgateway_deployment_in_flight"];

    [Fact]
    public async Task Every_panel_query_returns_data_from_the_scraped_gateway()
    {
        var failures = new List<string>();
        var targets = Targets();
        foreach (var (panel, expr) in targets)
        {
            var query = expr;
            IReadOnlyList<PrometheusServer.Sample> result;
            try
            {
                query = Substitute(expr);
                result = await scraped.Prometheus.QueryAsync(query);
            }
            catch (InvalidOperationException ex)
            {
                failures.Add($"panel '{panel}': {ex.Message}\n    {query}");
                continue;
            }

            if (result.Count == 0)
            {
                failures.Add($"panel '{panel}': no data\n    {query}");
            }
            else if (!MayBeZero.Any(m => expr.Contains(m, StringComparison.Ordinal)) && !result.Any(s => double.IsFinite(s.Value) && s.Value > 0))
            {
                failures.Add($"panel '{panel}': only zero or NaN ({string.Join(", ", result)})\n    {query}");
            }
        }

        Assert.True(targets.Count >= 30, $"only {targets.Count} panel queries found in {DashboardPath}");
        Assert.True(failures.Count == 0, $"{failures.Count} of {targets.Count} panel queries failed:\n" + string.Join('\n', failures));
    }

    [Fact]
    public async Task Every_variable_lists_values_and_every_query_uses_the_variables()
    {
        using var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(DashboardPath));
        var root = dashboard.RootElement;
        Assert.InRange(root.GetProperty("schemaVersion").GetInt32(), 36, 41);
        var variables = root.GetProperty("templating").GetProperty("list").EnumerateArray().ToList();

        var source = Assert.Single(variables, v => v.GetProperty("name").GetString() == "DS_PROMETHEUS");
        Assert.Equal("datasource", source.GetProperty("type").GetString());
        Assert.Equal("prometheus", source.GetProperty("query").GetString());

        var queried = variables.Where(v => v.GetProperty("type").GetString() == "query").ToList();
        Assert.Equal(["instance", "route", "provider", "deployment"], queried.Select(v => v.GetProperty("name").GetString()));
        foreach (var variable in queried)
        {
            var name = variable.GetProperty("name").GetString()!;
            Assert.True(variable.GetProperty("includeAll").GetBoolean(), $"${name} should offer All");
            Assert.Equal(".*", variable.GetProperty("allValue").GetString());
            Assert.Equal("${DS_PROMETHEUS}", variable.GetProperty("datasource").GetProperty("uid").GetString());

            // label_values(selector, label), answered the way Grafana answers it: from the series API.
            var definition = variable.GetProperty("definition").GetString()!;
            var match = LabelValues().Match(definition);
            Assert.True(match.Success, $"${name}: '{definition}' is not label_values(selector, label)");
            var label = match.Groups["label"].Value;
            var series = await scraped.Prometheus.SeriesAsync(Substitute(match.Groups["selector"].Value));
            var values = series.Select(s => s.GetValueOrDefault(label)).Where(v => !string.IsNullOrEmpty(v)).Distinct().ToList();
            Assert.True(values.Count > 0, $"${name}: {definition} lists no values");
        }

        var ids = new HashSet<int>();
        foreach (var panel in Panels(root))
        {
            var title = panel.GetProperty("title").GetString();
            Assert.True(ids.Add(panel.GetProperty("id").GetInt32()), $"panel '{title}': duplicate id");
            if (panel.GetProperty("type").GetString() == "row")
            {
                continue;
            }

            Assert.Equal("${DS_PROMETHEUS}", panel.GetProperty("datasource").GetProperty("uid").GetString());
            foreach (var target in panel.GetProperty("targets").EnumerateArray())
            {
                var expr = target.GetProperty("expr").GetString()!;
                Assert.Equal("${DS_PROMETHEUS}", target.GetProperty("datasource").GetProperty("uid").GetString());
                Assert.True(FilterVariables.Any(v => expr.Contains(v, StringComparison.Ordinal)), $"panel '{title}': the query ignores the variables\n    {expr}");
                Assert.True(!expr.Contains("rate(", StringComparison.Ordinal) || expr.Contains("[$__rate_interval]", StringComparison.Ordinal) || expr.Contains("[$__range]", StringComparison.Ordinal),
                    $"panel '{title}': a rate over a fixed window\n    {expr}");
            }
        }
    }

    [Fact]
    public async Task Choosing_a_route_a_provider_or_a_deployment_narrows_every_panel()
    {
        string[] deploymentLabels = ["deployment", "modelgateway_deployment", "from_deployment"];
        var eastDeployments = (await scraped.Prometheus.QueryAsync("group by (deployment) (modelgateway_attempts_total{provider=\"east\"})"))
            .Select(s => s.Labels["deployment"]).ToHashSet();
        Assert.Contains("chat-east", eastDeployments);
        var failures = new List<string>();
        foreach (var (panel, expr) in Targets())
        {
            foreach (var (variable, value) in new[] { ("route", "failover"), ("provider", "west"), ("deployment", "chat-west") })
            {
                var query = Substitute(expr, new Dictionary<string, string> { [variable] = value });
                foreach (var sample in await scraped.Prometheus.QueryAsync(query))
                {
                    var labels = sample.Labels;
                    var wrong = variable switch
                    {
                        "route" => new[] { "route", "gen_ai_request_model" }.Any(l => labels.TryGetValue(l, out var v) && v != value),
                        "provider" => (labels.TryGetValue("provider", out var p) && p != value)
                            || deploymentLabels.Any(l => labels.TryGetValue(l, out var d) && eastDeployments.Contains(d)),
                        _ => deploymentLabels.Any(l => labels.TryGetValue(l, out var d) && d != value),
                    };
                    if (wrong)
                    {
                        failures.Add($"panel '{panel}' with ${variable}={value} shows {sample}\n    {query}");
                    }
                }
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} series escaped the filters:\n" + string.Join('\n', failures));
    }

    [Fact]
    public async Task Alert_rules_evaluate_cleanly_and_fire_on_the_failures_driven()
    {
        var secondary = ScrapedGateway.Instance(scraped.Secondary);
        string[] expected =
        [
            "ModelGatewayCircuitOpen deployment=broken-east",
            "ModelGatewayHighErrorRate route=doomed",
            "ModelGatewayRetryBudgetExhausted instance=" + secondary,
            "ModelGatewayRouteFailing route=doomed",
            "ModelGatewayUpstreamThrottled deployment=throttled-east",
        ];
        string[] keys = ["deployment", "route", "instance", "modelgateway_deployment"];
        var names = expected.Select(e => e.Split(' ')[0]).ToHashSet();

        // Pending (they all wait a while before firing) or firing, and no false alarm of those kinds on the
        // healthy routes and deployments. Slow first tokens and failed scrapes depend on how loaded the
        // machine is, so those alerts are neither expected nor forbidden here.
        var alerts = Array.Empty<string>();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            var active = await scraped.Prometheus.QueryAsync("ALERTS{alertstate=~\"pending|firing\"}");
            alerts = active
                .Where(a => names.Contains(a.Labels["alertname"]))
                .Select(a => a.Labels["alertname"] + " " + string.Join(' ', keys.Where(a.Labels.ContainsKey).Select(k => $"{k}={a.Labels[k]}")))
                .Order(StringComparer.Ordinal)
                .ToArray();
            if (alerts.SequenceEqual(expected))
            {
                break;
            }

            await Task.Delay(250);
        }

        Assert.True(alerts.SequenceEqual(expected), $"expected alerts:\n  {string.Join("\n  ", expected)}\nactive:\n  {string.Join("\n  ", alerts)}");

        using var response = await scraped.Prometheus.Http.GetAsync("api/v1/rules");
        using var rules = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var evaluated = rules.RootElement.GetProperty("data").GetProperty("groups").EnumerateArray()
            .SelectMany(g => g.GetProperty("rules").EnumerateArray())
            .Select(r => (Name: r.GetProperty("name").GetString(), Health: r.GetProperty("health").GetString(), Error: r.TryGetProperty("lastError", out var e) ? e.GetString() : null))
            .ToList();
        Assert.True(evaluated.Count >= 5, $"only {evaluated.Count} rules loaded");
        Assert.All(evaluated, r => Assert.True(r.Health == "ok", $"{r.Name}: {r.Health} {r.Error}"));
    }

    [Fact]
    public async Task Promtool_accepts_the_config_the_rules_and_the_rule_tests()
    {
        await AssertPromtoolAsync(PrometheusDirectory, "check", "config", "prometheus.yml");
        await AssertPromtoolAsync(PrometheusDirectory, "check", "rules", "alerts.yml");
        await AssertPromtoolAsync(PrometheusDirectory, "test", "rules", "alerts.test.yml");

        // The Kubernetes job ships commented out; it must still be valid once uncommented.
        var directory = Directory.CreateTempSubdirectory("modelgateway-promtool-").FullName;
        try
        {
            var lines = (await File.ReadAllLinesAsync(Path.Combine(PrometheusDirectory, "prometheus.yml"))).ToList();
            var start = lines.FindIndex(l => l.Trim() == "# - job_name: modelgateway-pods");
            var end = lines.FindIndex(l => l.Contains("--- end Kubernetes pod discovery ---", StringComparison.Ordinal));
            Assert.True(start > 0 && end > start, "prometheus.yml should hold the commented Kubernetes job");
            for (var i = start; i < end; i++)
            {
                Assert.StartsWith("  # ", lines[i], StringComparison.Ordinal);
                lines[i] = "  " + lines[i][4..];
            }

            Assert.Contains("kubernetes_sd_configs:", string.Join('\n', lines[start..end]), StringComparison.Ordinal);
            File.Copy(Path.Combine(PrometheusDirectory, "alerts.yml"), Path.Combine(directory, "alerts.yml"));
            await File.WriteAllLinesAsync(Path.Combine(directory, "prometheus.yml"), lines);
            var (exitCode, output) = await RunPromtoolAsync(directory, "check", "config", "prometheus.yml");
            if (exitCode != 0 && output.Contains("field kubernetes_sd_configs not found", StringComparison.Ordinal))
            {
                // Debian's prometheus package is built without Kubernetes discovery: check the rest of the
                // job (relabelling) with the discovery block swapped for a static target.
                var sd = lines.FindIndex(start, l => l.Trim() == "kubernetes_sd_configs:");
                var relabel = lines.FindIndex(sd, l => l.Trim() == "relabel_configs:");
                lines.RemoveRange(sd, relabel - sd);
                lines.InsertRange(sd, ["    static_configs:", "      - targets: [gateway-0.modelgateway:8080]"]);
                await File.WriteAllLinesAsync(Path.Combine(directory, "prometheus.yml"), lines);
                (exitCode, output) = await RunPromtoolAsync(directory, "check", "config", "prometheus.yml");
            }

            Assert.True(exitCode == 0, "the uncommented Kubernetes job does not check:\n" + output);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Panel_queries_render_as_graphs_on_the_prometheus_graph_page()
    {
        const string Chromium = "/usr/bin/chromium";
        Assert.True(File.Exists(Chromium), "chromium is not installed: run ./test.sh, which installs it (apt package chromium).");
        var output = Path.Combine(ScrapedGateway.RepositoryRoot, "TestResults", "prometheus");
        Directory.CreateDirectory(output);
        var targets = Targets();
        (string File, string Panel, int Target)[] shots =
        [
            ("prometheus-requests-by-route.png", "Requests/s by route", 0),
            ("prometheus-ttft-p90-by-deployment.png", "Time to first token by deployment (p50, p90, p99)", 1),
            ("prometheus-failovers.png", "Failovers by route and failed deployment", 0),
            ("prometheus-rejections-by-reason.png", "Rejections by reason", 0),
        ];

        // Two browsers at a time: the page needs a few seconds of (virtual) time to fetch and draw.
        await Parallel.ForEachAsync(shots, new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (shot, cancellationToken) =>
        {
            var expr = targets.Where(t => t.Panel == shot.Panel).Select(t => t.Expr).ElementAt(shot.Target);
            var url = $"http://127.0.0.1:{scraped.Prometheus.Port}/graph?g0.expr={Uri.EscapeDataString(Substitute(expr))}&g0.tab=0&g0.range_input=2m";
            var path = Path.Combine(output, shot.File);
            File.Delete(path);
            await ScreenshotAsync(Chromium, url, path);
            var bytes = await File.ReadAllBytesAsync(path, cancellationToken);
            Assert.True(bytes.Length > 10_000 && bytes[..4].SequenceEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }), $"{shot.File}: not a rendered PNG ({bytes.Length} bytes)");
        });
    }

    private static async Task ScreenshotAsync(string chromium, string url, string path)
    {
        var profile = Directory.CreateTempSubdirectory("modelgateway-chromium-").FullName;
        try
        {
            var start = new ProcessStartInfo(chromium)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var argument in new[]
            {
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", $"--user-data-dir={profile}", "--window-size=1200,700",
                $"--screenshot={path}", "--virtual-time-budget=5000", url,
            })
            {
                start.ArgumentList.Add(argument);
            }

            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            _ = process.StandardOutput.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                Assert.Fail($"chromium did not finish a screenshot of {url} in 60s");
            }

            Assert.True(File.Exists(path), $"chromium exited with {process.ExitCode} and no screenshot of {url}:\n{await stderr}");
        }
        finally
        {
            try
            {
                Directory.Delete(profile, recursive: true);
            }
            catch (IOException)
            {
                // A browser helper may still hold a file; the OS cleans temp folders.
            }
        }
    }

    private static async Task AssertPromtoolAsync(string directory, params string[] arguments)
    {
        var (exitCode, output) = await RunPromtoolAsync(directory, arguments);
        Assert.True(exitCode == 0, $"promtool {string.Join(' ', arguments)} exited with {exitCode}:\n{output}");
    }

    private static async Task<(int ExitCode, string Output)> RunPromtoolAsync(string directory, params string[] arguments)
    {
        var start = new ProcessStartInfo(PrometheusServer.Executable("promtool"))
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>Every panel's every query, with the panel's title.</summary>
    private static List<(string Panel, string Expr)> Targets()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(DashboardPath));
        return Panels(dashboard.RootElement)
            .Where(p => p.TryGetProperty("targets", out _))
            .SelectMany(p => p.GetProperty("targets").EnumerateArray().Select(t => (p.GetProperty("title").GetString()!, t.GetProperty("expr").GetString()!)))
            .ToList();
    }

    // Rows that are collapsed keep their panels inside them.
    private static IEnumerable<JsonElement> Panels(JsonElement root)
    {
        foreach (var panel in root.GetProperty("panels").EnumerateArray())
        {
            yield return panel;
            if (panel.TryGetProperty("panels", out var nested))
            {
                foreach (var inner in nested.EnumerateArray())
                {
                    yield return inner;
                }
            }
        }
    }

    /// <summary>
    /// What Grafana sends with the <paramref name="chosen"/> values and every other variable at All (their
    /// allValue, <c>.*</c>). The rate interval is 5m rather than Grafana's 1m for a 15s scrape, so that
    /// the two rounds of traffic stay in the window however long the tests before this query took.
    /// Regex group references (<c>$1</c>) are left alone; any other variable is a mistake.
    /// </summary>
    private static string Substitute(string expr, IReadOnlyDictionary<string, string>? chosen = null) => Variable().Replace(expr, match => match.Groups["name"].Value switch
    {
        var name when chosen is not null && chosen.TryGetValue(name, out var value) => value,
        "instance" or "route" or "provider" or "deployment" => ".*",
        "__rate_interval" => "5m",
        "__range" => "5m",
        "__interval" => "15s",
        var name when name.All(char.IsAsciiDigit) => match.Value,
        var name => throw new InvalidOperationException($"unknown variable ${name}"),
    });

    [GeneratedRegex(@"\$\{?(?<name>\w+)\}?")]
    private static partial Regex Variable();

    [GeneratedRegex(@"^label_values\((?<selector>.+),\s*(?<label>\w+)\)$")]
    private static partial Regex LabelValues();
}
