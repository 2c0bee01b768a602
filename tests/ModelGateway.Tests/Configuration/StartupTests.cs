using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Configuration;

/// <summary>What an admin sees when the gateway starts: the demo with no config, a clear refusal with a bad one.</summary>
public sealed class StartupTests
{
    [Fact]
    public async Task A_bad_routing_file_stops_the_process_with_every_error_listed()
    {
        var directory = Directory.CreateTempSubdirectory("modelgateway-startup-").FullName;
        var config = Path.Combine(directory, "routing.yaml");
        await File.WriteAllTextAsync(config, """
            providers:
              - { name: p, kind: openai-compatible, baseUrl: http://localhost:1/v1 }
            deployments:
              - { name: d, provider: missing, model: m }
            routes:
              - { name: r, targets: [ghost] }
            """);

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
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);

        Assert.NotEqual(0, process.ExitCode);
        var errors = await stderr;
        Assert.Contains("deployments[0].provider: unknown provider 'missing'", errors, StringComparison.Ordinal);
        Assert.Contains("routes[0].targets[0]: unknown deployment 'ghost'", errors, StringComparison.Ordinal);
        await stdout;
        Directory.Delete(directory, recursive: true);
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
