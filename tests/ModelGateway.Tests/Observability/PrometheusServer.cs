using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Observability;

/// <summary>
/// A real Prometheus (the Debian package the test command installs) on a free loopback port, with its
/// data in a temp folder. Queried over its HTTP API exactly as Grafana queries it.
/// </summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _log;

    private PrometheusServer(Process process, int port, ConcurrentQueue<string> log)
    {
        _process = process;
        _log = log;
        Port = port;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public int Port { get; }

    public HttpClient Http { get; }

    /// <summary>The last lines Prometheus logged, for failure messages.</summary>
    public string Log => string.Join('\n', _log.TakeLast(40));

    public static async Task<PrometheusServer> StartAsync(string configPath, string dataDirectory)
    {
        var port = RedisServer.FreePort();
        var start = new ProcessStartInfo(Executable("prometheus"))
        {
            ArgumentList =
            {
                $"--config.file={configPath}",
                $"--storage.tsdb.path={dataDirectory}",
                $"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var log = new ConcurrentQueue<string>();
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => Keep(log, e.Data);
        process.ErrorDataReceived += (_, e) => Keep(log, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new PrometheusServer(process, port, log);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"prometheus exited with code {process.ExitCode}:\n{server.Log}");
            }

            try
            {
                using var ready = await server.Http.GetAsync("-/ready");
                if (ready.StatusCode == HttpStatusCode.OK)
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(100);
        }

        await server.DisposeAsync();
        throw new InvalidOperationException("prometheus did not become ready:\n" + server.Log);
    }

    /// <summary>Runs an instant query; returns the result vector, or throws with Prometheus's error (a query that does not parse).</summary>
    public async Task<IReadOnlyList<Sample>> QueryAsync(string promql)
    {
        using var response = await Http.GetAsync("api/v1/query?query=" + Uri.EscapeDataString(promql));
        var body = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(body);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"Prometheus refused the query: {document.RootElement.GetProperty("error").GetString()}");
        }

        var data = document.RootElement.GetProperty("data");
        var samples = new List<Sample>();
        if (data.GetProperty("resultType").GetString() == "scalar")
        {
            samples.Add(new Sample(new Dictionary<string, string>(), ParseValue(data.GetProperty("result"))));
            return samples;
        }

        foreach (var item in data.GetProperty("result").EnumerateArray())
        {
            var labels = item.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
            samples.Add(new Sample(labels, ParseValue(item.GetProperty("value"))));
        }

        return samples;
    }

    /// <summary>The series matching a selector, as Grafana's <c>label_values(selector, label)</c> reads them.</summary>
    public async Task<IReadOnlyList<IReadOnlyDictionary<string, string>>> SeriesAsync(string selector)
    {
        using var response = await Http.GetAsync("api/v1/series?match[]=" + Uri.EscapeDataString(selector));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"series {selector}: {body}");
        using var document = JsonDocument.Parse(body);
        return document.RootElement.GetProperty("data").EnumerateArray()
            .Select(s => (IReadOnlyDictionary<string, string>)s.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!))
            .ToList();
    }

    /// <summary>Polls <paramref name="promql"/> until <paramref name="done"/> holds; fails with the last answer.</summary>
    public async Task WaitUntilAsync(string promql, Func<IReadOnlyList<Sample>, bool> done, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        IReadOnlyList<Sample> last = [];
        while (clock.Elapsed < timeout)
        {
            last = await QueryAsync(promql);
            if (done(last))
            {
                return;
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"{what}: '{promql}' still returned [{string.Join(", ", last)}] after {timeout.TotalSeconds}s\n{Log}");
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    /// <summary>The path of a Prometheus binary (prometheus, promtool).</summary>
    public static string Executable(string name)
    {
        foreach (var directory in new[] { "/usr/bin", "/usr/local/bin" })
        {
            var candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"{name} is not installed: run ./test.sh, which installs it (apt package prometheus).");
    }

    private static double ParseValue(JsonElement pair)
    {
        return pair[1].GetString() switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            var text => double.Parse(text!, System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    private static void Keep(ConcurrentQueue<string> log, string? line)
    {
        if (line is null)
        {
            return;
        }

        log.Enqueue(line);
        while (log.Count > 200)
        {
            log.TryDequeue(out _);
        }
    }

    /// <summary>One series of a query result.</summary>
    public sealed record Sample(IReadOnlyDictionary<string, string> Labels, double Value)
    {
        public override string ToString() => "{" + string.Join(",", Labels.Select(l => $"{l.Key}=\"{l.Value}\"")) + "} " + Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
