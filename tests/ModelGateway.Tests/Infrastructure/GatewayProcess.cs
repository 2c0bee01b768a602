using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;

namespace ModelGateway.Tests.Infrastructure;

/// <summary>The gateway as its own OS process (<c>dotnet ModelGateway.dll</c>), for tests of several replicas.</summary>
internal sealed class GatewayProcess : IAsyncDisposable
{
    private const int KeptLines = 2000;
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output;

    private GatewayProcess(Process process, int port, ConcurrentQueue<string> output)
    {
        _process = process;
        _output = output;
        Port = port;
        Http = new HttpClient(new SocketsHttpHandler { ResponseDrainTimeout = TimeSpan.Zero }) { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public int Port { get; }

    public HttpClient Http { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>The last lines the process wrote (its console log, when the test turned it on), to explain a failure.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>Starts the gateway; <paramref name="environment"/> adds variables to the process's own environment.</summary>
    public static async Task<GatewayProcess> StartAsync(string configPath, IDictionary<string, string> settings, IDictionary<string, string>? environment = null)
    {
        var port = RedisServer.FreePort();
        var gatewayDll = typeof(GatewayApplication).Assembly.Location;
        var arguments = new List<string> { gatewayDll, "--config", configPath, "--urls", $"http://127.0.0.1:{port}", "--Observability:ConsoleLog=false" };
        arguments.AddRange(settings.Select(s => $"--{s.Key}={s.Value}"));
        var start = new ProcessStartInfo("dotnet", arguments)
        {
            WorkingDirectory = Path.GetDirectoryName(gatewayDll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var output = new ConcurrentQueue<string>();
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, line) => Keep(output, line.Data);
        process.ErrorDataReceived += (_, line) => Keep(output, line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var gateway = new GatewayProcess(process, port, output);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the gateway process exited with code {process.ExitCode}: {gateway.Output}");
            }

            try
            {
                using var ready = await gateway.Http.GetAsync("healthz/ready");
                if (ready.StatusCode == HttpStatusCode.OK)
                {
                    return gateway;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(100);
        }

        await gateway.DisposeAsync();
        throw new InvalidOperationException("the gateway process did not become ready");
    }

    private static void Keep(ConcurrentQueue<string> output, string? line)
    {
        if (line is null)
        {
            return;
        }

        output.Enqueue(line);
        while (output.Count > KeptLines)
        {
            output.TryDequeue(out _);
        }
    }

    /// <summary>SIGKILL, as a crashed pod or an OOM kill: no shutdown, nothing flushed, nothing released.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>The Prometheus scrape, as text.</summary>
    public Task<string> MetricsAsync() => Http.GetStringAsync("metrics");

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await KillAsync();
        _process.Dispose();
    }
}
