using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>
/// Runs a script of <c>FakeUpstream/node/</c> with <c>node</c>, handing it one JSON argument, and returns the JSON it
/// prints. The scripts drive vendors' official JavaScript clients; <c>test.sh</c> installs them with <c>npm ci</c>.
/// </summary>
internal static class NodeSdkRunner
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);

    public static async Task<JsonObject> RunAsync(string script, JsonObject input)
    {
        var folder = ScriptFolder();
        if (!Directory.Exists(Path.Combine(folder, "node_modules")))
        {
            Assert.Fail($"The official JavaScript clients are not installed: run `npm ci --engine-strict=false` in {folder} (test.sh does).");
        }

        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(input.ToJsonString());
        // Keep the clients away from any real credentials or proxies of the machine.
        foreach (var name in new[] { "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS", "GEMINI_API_KEY", "GOOGLE_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy" })
        {
            start.Environment.Remove(name);
        }

        start.Environment["NO_PROXY"] = "127.0.0.1,localhost";
        start.Environment["AWS_EC2_METADATA_DISABLED"] = "true";

        using var process = Process.Start(start) ?? throw new InvalidOperationException("node did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(Limit))
        {
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"node {script} did not finish within {Limit}: {await stderr}");
            }
        }

        var output = await stdout;
        Assert.True(process.ExitCode == 0, $"node {script} exited with {process.ExitCode}: {await stderr}");
        try
        {
            return JsonNode.Parse(output)!.AsObject();
        }
        catch (JsonException)
        {
            Assert.Fail($"node {script} printed no JSON: {output} {await stderr}");
            throw;
        }
    }

    private static string ScriptFolder()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "tests", "ModelGateway.Tests", "FakeUpstream", "node");
            if (File.Exists(Path.Combine(candidate, "package.json")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/ModelGateway.Tests/FakeUpstream/node was not found above " + AppContext.BaseDirectory);
    }
}
