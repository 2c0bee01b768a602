using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Configuration;

/// <summary>What an admin sees when the gateway starts: the demo with no config, a clear refusal with a bad one.</summary>
public sealed class StartupTests
{
    [Fact]
    public async Task A_bad_routing_file_stops_the_process_with_every_error_listed_and_no_stack_trace()
    {
        var (exitCode, stdout, stderr) = await RunWithConfigAsync("""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: http://localhost:1/v1 }
            deployments:
              - { name: d, provider: missing, model: m }
            routes:
              - { name: r, targets: [ghost] }
            """);

        Assert.Equal(1, exitCode);
        Assert.Contains("deployments[0].provider: unknown provider 'missing'", stderr, StringComparison.Ordinal);
        Assert.Contains("routes[0].targets[0]: unknown deployment 'ghost'", stderr, StringComparison.Ordinal);
        AssertNoCrashReport(stdout, stderr);
    }

    [Theory]
    [InlineData("providers: [ { name: p, kind: openai-compatible\n", "invalid YAML")]
    [InlineData("providers:\n  - { name: p, kind: openai-compatible, baseUrl: \"${MODELGATEWAY_TEST_UNSET_URL}\" }\ndeployments:\n  - { name: d, provider: p, model: m }\nroutes:\n  - { name: r, targets: [d] }\n", "providers[0].baseUrl: environment variable 'MODELGATEWAY_TEST_UNSET_URL' is not set")]
    public async Task A_broken_or_incomplete_routing_file_is_reported_in_one_clean_message(string yaml, string expected)
    {
        var (exitCode, stdout, stderr) = await RunWithConfigAsync(yaml);

        Assert.Equal(1, exitCode);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        AssertNoCrashReport(stdout, stderr);
    }

    // What the admin must not have to read through: the host's crash line, a .NET stack trace, build paths.
    private static void AssertNoCrashReport(string stdout, string stderr)
    {
        var output = stdout + stderr;
        Assert.DoesNotContain("Hosting failed to start", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        Assert.DoesNotContain(".cs:line", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain(Path.Combine("src", "ModelGateway") + Path.DirectorySeparatorChar, output, StringComparison.Ordinal);
    }

    /// <summary>Runs the gateway as its own process (console log on, as shipped) until it exits.</summary>
    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunWithConfigAsync(string yaml)
    {
        var directory = Directory.CreateTempSubdirectory("modelgateway-startup-").FullName;
        try
        {
            var config = Path.Combine(directory, "routing.yaml");
            await File.WriteAllTextAsync(config, yaml);
            var gatewayDll = typeof(GatewayApplication).Assembly.Location;
            var start = new ProcessStartInfo("dotnet", [gatewayDll, "--config", config, "--urls", "http://127.0.0.1:0"])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                WorkingDirectory = Path.GetDirectoryName(gatewayDll)!,
            };
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(timeout.Token);
            return (process.ExitCode, await stdout, await stderr);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Without_a_routing_file_the_built_in_demo_serves_with_no_keys()
    {
        await using var gateway = await GatewayHost.StartAsync(routingYaml: null);

        using var models = await gateway.Http.GetAsync("v1/models");
        using var chat = await gateway.PostAsync("v1/chat/completions", """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}""");

        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        using var json = JsonDocument.Parse(await models.Content.ReadAsStringAsync());
        var ids = json.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Contains("gpt-4o-mini", ids);
        Assert.Contains("text-embedding-3-small", ids);
        Assert.Contains("auto", ids);
        Assert.Equal("gpt-4o-mini@azure", chat.Headers.GetValues("x-modelgateway-deployment").Single());
    }

    [Fact]
    public async Task Health_endpoints_answer_for_kubernetes_probes()
    {
        await using var gateway = await GatewayHost.StartAsync(routingYaml: null);

        using var live = await gateway.Http.GetAsync("healthz/live");
        using var ready = await gateway.Http.GetAsync("healthz/ready");

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Contains("\"routing-config\"", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
