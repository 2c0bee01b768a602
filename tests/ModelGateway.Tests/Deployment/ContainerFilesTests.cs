using System.Diagnostics;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace ModelGateway.Tests.Deploy;

/// <summary>
/// The Dockerfile, .dockerignore and deploy/compose checked against the gateway and the shipped
/// Prometheus and Grafana files (the image build itself runs in the CI workflow: no container can
/// start on the test machines).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class ContainerFilesTests
{
    private static string Root => ManifestChecks.Root;

    [Fact]
    public async Task The_Dockerfile_publishes_in_the_SDK_image_and_runs_non_root_on_a_chiseled_runtime_at_the_documented_port_and_routing_path()
    {
        var dockerfile = await File.ReadAllTextAsync(Path.Combine(Root, "Dockerfile"));
        var stages = FromLine().Matches(dockerfile).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(2, stages.Count);
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:", stages[0], StringComparison.Ordinal);
        Assert.Matches("^mcr.microsoft.com/dotnet/aspnet:.*(chiseled|distroless)", stages[1]);
        var runtime = dockerfile[dockerfile.LastIndexOf("\nFROM ", StringComparison.Ordinal)..];
        Assert.Contains("USER $APP_UID", runtime, StringComparison.Ordinal);
        Assert.Contains("ASPNETCORE_URLS=http://0.0.0.0:8080", runtime, StringComparison.Ordinal);
        Assert.Contains($"MODELGATEWAY_CONFIG={PublishedGateway.RoutingMountPath}", runtime, StringComparison.Ordinal);
        Assert.Contains("EXPOSE 8080", runtime, StringComparison.Ordinal);
        Assert.Contains("ENTRYPOINT [\"dotnet\", \"ModelGateway.dll\"]", runtime, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(await PublishedGateway.FolderAsync(), "ModelGateway.dll")));
        Assert.Contains(PublishedGateway.RoutingMountPath, await File.ReadAllTextAsync(Path.Combine(Root, "docs", "deployment.md")), StringComparison.Ordinal);

        // Everything the build stage copies is in the build context .dockerignore leaves.
        var ignore = (await File.ReadAllLinesAsync(Path.Combine(Root, ".dockerignore"))).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Equal("*", ignore[0]);
        foreach (var source in CopySources().Matches(dockerfile).SelectMany(m => m.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries)))
        {
            Assert.True(ignore.Contains("!" + source) || ignore.Any(l => l.StartsWith('!') && l.EndsWith('/') && source.StartsWith(l[1..], StringComparison.Ordinal)), $"{source} is copied but .dockerignore leaves it out");
            Assert.True(File.Exists(Path.Combine(Root, source)) || Directory.Exists(Path.Combine(Root, source)), $"{source} does not exist");
        }
    }

    [Fact]
    public async Task The_compose_fleet_runs_two_replicas_on_persistent_Redis_behind_nginx_with_the_shipped_Prometheus_job_alerts_and_Grafana_dashboard()
    {
        var folder = Path.Combine(Root, "deploy", "compose");
        var compose = ManifestChecks.Documents(await File.ReadAllTextAsync(Path.Combine(folder, "compose.yaml"))).Single();
        var services = (YamlMappingNode)compose.At("services")!;
        var gateways = services.Children.Select(s => KeyValuePair.Create(s.Key, Merged(s.Value))).Where(s => s.Value.Text("image") == "modelgateway:local").ToList();
        Assert.Equal(2, gateways.Count);

        foreach (var (name, gateway) in gateways)
        {
            var environment = gateway.Pairs("environment").ToDictionary(p => p.Key, p => Regex.Replace(p.Value, @"\$\{[A-Z_]+:-([^}]*)\}", "$1"));
            Assert.Empty(ManifestChecks.CheckEnvironment(environment.Where(e => e.Value.Length > 0).ToDictionary(), ["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"]));
            Assert.Equal("true", gateway.Text("read_only"));
            Assert.Contains(gateway.Items("tmpfs"), t => ((YamlScalarNode)t).Value == "/tmp");
            Assert.Contains(gateway.Items("volumes"), v => ((YamlScalarNode)v).Value!.EndsWith($":{environment["MODELGATEWAY_CONFIG"]}:ro", StringComparison.Ordinal));
            var redis = environment["State__Redis"].Split(':')[0];
            Assert.True(services.Children.ContainsKey(new YamlScalarNode(redis)), $"{((YamlScalarNode)name).Value} uses Redis at {redis}, which is no service");
            var stop = TimeSpan.FromSeconds(int.Parse(gateway.Text("stop_grace_period")!.TrimEnd('s'), System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(stop > ManifestChecks.Shutdown(environment).Total, "stop_grace_period is shorter than the drain");
        }

        var redisCommand = string.Join(' ', services.At("redis")!.Items("command").Select(c => ((YamlScalarNode)c).Value));
        Assert.Contains("--appendonly yes", redisCommand, StringComparison.Ordinal);
        Assert.Contains(services.At("redis")!.Items("volumes"), v => ((YamlScalarNode)v).Value!.EndsWith(":/data", StringComparison.Ordinal));

        // nginx sends to both replicas on the port they listen on.
        var nginx = await File.ReadAllTextAsync(Path.Combine(folder, "nginx.conf"));
        foreach (var (name, _) in gateways)
        {
            Assert.Contains($"server {((YamlScalarNode)name).Value}:8080", nginx, StringComparison.Ordinal);
        }

        // Prometheus: the shipped job and rules, scraping each replica on its admin port; promtool accepts it.
        var mounts = services.At("prometheus")!.Items("volumes").Select(v => ((YamlScalarNode)v).Value!).ToList();
        Assert.Contains("../prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro", mounts);
        var shipped = ManifestChecks.Documents(await File.ReadAllTextAsync(Path.Combine(Root, "deploy", "prometheus", "prometheus.yml"))).Single();
        var ours = ManifestChecks.Documents(await File.ReadAllTextAsync(Path.Combine(folder, "prometheus.yml"))).Single();
        Assert.Equal(shipped.Pairs("global"), ours.Pairs("global"));
        Assert.Equal(shipped.Items("rule_files").Select(r => r.ToString()), ours.Items("rule_files").Select(r => r.ToString()));
        var job = ours.Items("scrape_configs").Single();
        var shippedJob = shipped.Items("scrape_configs").Single();
        Assert.Equal(shippedJob.Text("job_name"), job.Text("job_name"));
        Assert.Equal(shippedJob.Text("metrics_path"), job.Text("metrics_path"));
        var adminPort = gateways[0].Value.Text("environment", "Admin__Port");
        Assert.Equal(gateways.Select(g => $"{((YamlScalarNode)g.Key).Value}:{adminPort}").Order(), job.Items("static_configs").Single().Items("targets").Select(t => ((YamlScalarNode)t).Value!).Order());
        await PromtoolAcceptsAsync(Path.Combine(folder, "prometheus.yml"));

        // Grafana: the shipped provisioning, and the dashboard where the shipped provider looks for it.
        var grafana = services.At("grafana")!.Items("volumes").Select(v => ((YamlScalarNode)v).Value!).ToList();
        Assert.Contains("../grafana/provisioning/datasources:/etc/grafana/provisioning/datasources:ro", grafana);
        Assert.Contains("../grafana/provisioning/dashboards:/etc/grafana/provisioning/dashboards:ro", grafana);
        var provider = ManifestChecks.Documents(await File.ReadAllTextAsync(Path.Combine(Root, "deploy", "grafana", "provisioning", "dashboards", "modelgateway.yml"))).Single();
        var dashboardFolder = provider.Items("providers").Single().Text("options", "path");
        Assert.Contains($"../grafana/modelgateway-dashboard.json:{dashboardFolder}/modelgateway-dashboard.json:ro", grafana);
        var datasource = ManifestChecks.Documents(await File.ReadAllTextAsync(Path.Combine(Root, "deploy", "grafana", "provisioning", "datasources", "prometheus.yml"))).Single();
        Assert.Equal("http://prometheus:9090", datasource.Items("datasources").Single().Text("url"));
    }

    // A service written as "<<: *gateway" plus its own keys, as compose reads it.
    private static YamlNode Merged(YamlNode service)
    {
        if (service is not YamlMappingNode mapping || !mapping.Children.TryGetValue(new YamlScalarNode("<<"), out var template) || template is not YamlMappingNode shared)
        {
            return service;
        }

        var merged = new YamlMappingNode();
        foreach (var (key, value) in shared.Children)
        {
            merged.Children[key] = value;
        }

        foreach (var (key, value) in mapping.Children.Where(c => ((YamlScalarNode)c.Key).Value != "<<"))
        {
            merged.Children[key] = value;
        }

        return merged;
    }

    private static async Task PromtoolAcceptsAsync(string config)
    {
        var folder = Directory.CreateTempSubdirectory("modelgateway-compose-prometheus-").FullName;
        try
        {
            File.Copy(config, Path.Combine(folder, "prometheus.yml"));
            File.Copy(Path.Combine(Root, "deploy", "prometheus", "alerts.yml"), Path.Combine(folder, "alerts.yml"));
            var start = new ProcessStartInfo("promtool", ["check", "config", "prometheus.yml"]) { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(start)!;
            var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            Assert.True(process.ExitCode == 0, output);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [GeneratedRegex(@"^FROM (\S+)", RegexOptions.Multiline)]
    private static partial Regex FromLine();

    [GeneratedRegex(@"^COPY (?!--from)(.+) \S+$", RegexOptions.Multiline)]
    private static partial Regex CopySources();
}
