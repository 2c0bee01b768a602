using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace ModelGateway.Tests.Infrastructure;

/// <summary>
/// A real redis-server (the Debian package the test command installs) on a free loopback port. By
/// default with no persistence; <c>persistent</c> gives it an append-only file (fsync every second, as
/// the docs tell operators to run it), so a restart keeps its data. Tests stop, restart, freeze and
/// thaw it to prove the gateway copes with Redis outages.
/// </summary>
internal sealed class RedisServer : IAsyncDisposable
{
    private readonly string? _directory;
    private string? _extraArguments;
    private Process? _process;

    private RedisServer(int port, bool persistent)
    {
        Port = port;
        _directory = persistent ? Directory.CreateTempSubdirectory("modelgateway-redis-").FullName : null;
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>The server's process id while it runs, for tests that signal it.</summary>
    public int ProcessId => _process?.Id ?? throw new InvalidOperationException("redis-server is not running");

    public static async Task<RedisServer> StartAsync(string? extraArguments = null, bool persistent = false)
    {
        var server = new RedisServer(FreePort(), persistent);
        await server.StartProcessAsync(extraArguments);
        return server;
    }

    /// <summary>(Re)starts the server on its port; a persistent one reloads its append-only file.</summary>
    public async Task StartProcessAsync(string? extraArguments = null)
    {
        _extraArguments = extraArguments ?? _extraArguments;
        var persistence = _directory is null
            ? "--save \"\" --appendonly no"
            : $"--save \"\" --appendonly yes --appendfsync everysec --dir {_directory}";
        var start = new ProcessStartInfo(Executable(), $"--port {Port} --bind 127.0.0.1 {persistence} --protected-mode no {_extraArguments}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await WaitUntilAnsweringAsync(Port);
    }

    /// <summary>Kills the server, as a crash or a network partition would look to the gateway.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    /// <summary>
    /// SIGSTOP: the server stops answering but its connections stay open and the kernel still accepts
    /// new ones and buffers what is sent, as in a long GC-like pause, a failover or a stuck disk.
    /// Commands sent meanwhile run when it is thawed.
    /// </summary>
    public Task FreezeAsync() => SignalAsync("STOP");

    /// <summary>SIGCONT: the frozen server carries on, starting with the commands buffered while it was frozen.</summary>
    public Task ThawAsync() => SignalAsync("CONT");

    private async Task SignalAsync(string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", $"-{signal} {ProcessId}") { UseShellExecute = false })!;
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {ProcessId} failed with {kill.ExitCode}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            // A frozen server ignores SIGTERM but not SIGKILL; thaw it anyway so nothing lingers stopped.
            try
            {
                await ThawAsync();
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }

        await StopAsync();
        if (_directory is not null)
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
                // Temp files; the OS cleans them.
            }
        }
    }

    public static async Task WaitUntilAnsweringAsync(int port)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(15))
        {
            try
            {
                using var connection = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{port},connectTimeout=500,abortConnect=true");
                await connection.GetDatabase().PingAsync();
                return;
            }
            catch (RedisConnectionException)
            {
                await Task.Delay(50);
            }
        }

        throw new InvalidOperationException($"redis-server did not answer on port {port}");
    }

    public static string Executable()
    {
        foreach (var candidate in new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" })
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("redis-server is not installed: run ./test.sh, which installs it (apt package redis-server).");
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>A three-master Redis Cluster on loopback, created with redis-cli --cluster create.</summary>
internal sealed class RedisCluster : IAsyncDisposable
{
    private readonly List<RedisServer> _nodes = [];
    private readonly string _directory = Directory.CreateTempSubdirectory("modelgateway-cluster-").FullName;

    public string ConnectionString => string.Join(',', _nodes.Select(n => n.ConnectionString));

    public static async Task<RedisCluster> StartAsync()
    {
        var cluster = new RedisCluster();
        for (var i = 0; i < 3; i++)
        {
            var port = RedisServer.FreePort();
            cluster._nodes.Add(await RedisServer.StartAsync(
                $"--cluster-enabled yes --cluster-config-file {Path.Combine(cluster._directory, $"nodes-{port}.conf")} --cluster-node-timeout 30000 --cluster-require-full-coverage no --dir {cluster._directory}"));
        }

        var create = new ProcessStartInfo("redis-cli", $"--cluster create {string.Join(' ', cluster._nodes.Select(n => n.ConnectionString))} --cluster-replicas 0 --cluster-yes")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(create)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException("redis-cli --cluster create failed: " + output);
        }

        // The cluster is usable once every node says every slot is served: until the gossip has
        // reached a node, it answers CLUSTERDOWN.
        var clock = Stopwatch.StartNew();
        using var connection = await ConnectionMultiplexer.ConnectAsync(cluster.ConnectionString + ",allowAdmin=true");
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            var ready = true;
            foreach (var node in cluster._nodes)
            {
                var info = await connection.GetServer(node.ConnectionString).ExecuteAsync("CLUSTER", "INFO");
                ready &= info.ToString().Contains("cluster_state:ok", StringComparison.Ordinal);
            }

            if (ready)
            {
                return cluster;
            }

            await Task.Delay(200);
        }

        throw new InvalidOperationException("the Redis cluster did not reach cluster_state:ok");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Temp files; the OS cleans them.
        }
    }
}
