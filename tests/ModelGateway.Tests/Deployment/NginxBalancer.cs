using System.Diagnostics;
using System.Globalization;
using System.Net;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Deploy;

/// <summary>
/// Debian's nginx (installed by the test command) on a free loopback port, with its own configuration
/// in a temp folder, in front of the gateway replicas. A small controller plays the part of
/// Kubernetes' endpoints controller: it polls every replica's <c>/healthz/ready</c> and keeps in the
/// nginx upstream exactly the replicas that are ready, reloading nginx when that set changes.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class NginxBalancer : IAsyncDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    private readonly string _directory;
    private readonly List<GatewayReplica> _replicas;
    private readonly CancellationTokenSource _stop = new();
    private readonly HttpClient _probe = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = TimeSpan.FromSeconds(2) };
    private readonly Process _nginx;
    private Task _controller = Task.CompletedTask;
    private int[] _inRotation;
    private int _reloads;

    private NginxBalancer(string directory, int port, List<GatewayReplica> replicas, Process nginx, int[] inRotation)
    {
        _directory = directory;
        Port = port;
        _replicas = replicas;
        _nginx = nginx;
        _inRotation = inRotation;
        Http = new HttpClient(new SocketsHttpHandler { ResponseDrainTimeout = TimeSpan.Zero, UseCookies = false })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{port}/"),
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public int Port { get; }

    /// <summary>A client of the fleet: everything it sends goes through nginx.</summary>
    public HttpClient Http { get; }

    /// <summary>Ports of the replicas nginx sends to now.</summary>
    public IReadOnlyList<int> InRotation => Volatile.Read(ref _inRotation);

    public int Reloads => Volatile.Read(ref _reloads);

    public static string Executable()
    {
        foreach (var candidate in new[] { "/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx" })
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("nginx is not installed: run ./test.sh, which installs it (apt package nginx).");
    }

    public static async Task<NginxBalancer> StartAsync(IReadOnlyList<GatewayReplica> replicas)
    {
        var directory = Directory.CreateTempSubdirectory("modelgateway-nginx-").FullName;
        var port = RedisServer.FreePort();
        var ports = replicas.Select(r => r.Port).ToArray();
        await File.WriteAllTextAsync(Path.Combine(directory, "nginx.conf"), Config(directory, port, ports));
        var start = new ProcessStartInfo(Executable(), ["-p", directory, "-c", Path.Combine(directory, "nginx.conf"), "-g", "daemon off;"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var nginx = Process.Start(start)!;
        nginx.OutputDataReceived += (_, _) => { };
        nginx.ErrorDataReceived += (_, _) => { };
        nginx.BeginOutputReadLine();
        nginx.BeginErrorReadLine();
        var balancer = new NginxBalancer(directory, port, [.. replicas], nginx, ports);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var ready = await balancer.Http.GetAsync("healthz/ready");
                if (ready.StatusCode == HttpStatusCode.OK)
                {
                    break;
                }
            }
            catch (HttpRequestException) when (clock.Elapsed < TimeSpan.FromSeconds(15) && !nginx.HasExited)
            {
                await Task.Delay(50);
            }
        }

        balancer._controller = balancer.ControlAsync();
        return balancer;
    }

    /// <summary>Starts watching a replica (a new pod): it joins the rotation once it is ready.</summary>
    public void Watch(GatewayReplica replica)
    {
        lock (_replicas)
        {
            _replicas.Add(replica);
        }
    }

    /// <summary>Stops watching a replica (a deleted pod).</summary>
    public void Forget(GatewayReplica replica)
    {
        lock (_replicas)
        {
            _replicas.Remove(replica);
        }
    }

    /// <summary>Waits until nginx sends to exactly <paramref name="ports"/>.</summary>
    public async Task WaitForRotationAsync(IEnumerable<int> ports, TimeSpan timeout)
    {
        var expected = ports.Order().ToArray();
        var clock = Stopwatch.StartNew();
        while (!InRotation.SequenceEqual(expected))
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"nginx sends to [{string.Join(',', InRotation)}], not [{string.Join(',', expected)}]");
            }

            await Task.Delay(20);
        }
    }

    public string ErrorLog => File.Exists(Path.Combine(_directory, "error.log")) ? File.ReadAllText(Path.Combine(_directory, "error.log")) : string.Empty;

    private async Task ControlAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var ready = new List<int>();
            GatewayReplica[] watched;
            lock (_replicas)
            {
                watched = [.. _replicas];
            }

            foreach (var replica in watched)
            {
                try
                {
                    using var response = await _probe.GetAsync(new Uri(replica.BaseAddress, "healthz/ready"), _stop.Token);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        ready.Add(replica.Port);
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    // Not ready: stopped, starting, or too slow to answer.
                }
            }

            var next = ready.Order().ToArray();
            if (!next.SequenceEqual(InRotation) && !_stop.IsCancellationRequested)
            {
                await ReloadAsync(next);
            }

            try
            {
                await Task.Delay(PollInterval, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    // Rewrites the upstream list and sends SIGHUP: new workers take the list, old ones finish what they carry.
    private async Task ReloadAsync(int[] ports)
    {
        await File.WriteAllTextAsync(Path.Combine(_directory, "nginx.conf"), Config(_directory, Port, ports));
        using var hup = Process.Start(new ProcessStartInfo("kill", ["-HUP", _nginx.Id.ToString(CultureInfo.InvariantCulture)]))!;
        await hup.WaitForExitAsync();
        Interlocked.Increment(ref _reloads);
        Volatile.Write(ref _inRotation, ports);
    }

    // The same proxy settings as deploy/compose/nginx.conf: HTTP/1.1 with upstream keep-alive, no
    // buffering so SSE events pass as they come, long reads for slow streams. With no replica ready the
    // upstream holds a closed port, so requests fail fast instead of nginx refusing the config.
    private static string Config(string directory, int port, IReadOnlyList<int> ports) => $$"""
        worker_processes 1;
        pid {{directory}}/nginx.pid;
        error_log {{directory}}/error.log warn;
        events { worker_connections 1024; }
        http {
            access_log off;
            client_body_temp_path {{directory}}/body;
            proxy_temp_path {{directory}}/proxy;
            fastcgi_temp_path {{directory}}/fastcgi;
            uwsgi_temp_path {{directory}}/uwsgi;
            scgi_temp_path {{directory}}/scgi;
            upstream gateways {
        {{string.Join('\n', (ports.Count > 0 ? ports : [1]).Select(p => $"        server 127.0.0.1:{p};"))}}
                keepalive 32;
            }
            server {
                listen 127.0.0.1:{{port}};
                location / {
                    proxy_pass http://gateways;
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                    proxy_buffering off;
                    proxy_read_timeout 300s;
                }
            }
        }
        """;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _controller;
        }
        catch (OperationCanceledException)
        {
            // Stopped mid-probe.
        }

        Http.Dispose();
        _probe.Dispose();
        if (!_nginx.HasExited)
        {
            _nginx.Kill(entireProcessTree: true);
            await _nginx.WaitForExitAsync();
        }

        _nginx.Dispose();
        _stop.Dispose();
        PublishedGateway.TryDelete(_directory);
    }
}
