using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Deploy;

/// <summary>
/// The gateway as the container image holds it: <c>dotnet publish</c> output in a read-only folder.
/// Published once per test run (with <c>--no-build</c>, from the build the tests run against).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal static class PublishedGateway
{
    /// <summary>The path the image and the manifests mount the routing file at (see docs/deployment.md).</summary>
    public const string RoutingMountPath = "/etc/modelgateway/routing.yaml";

    private static readonly Lazy<Task<string>> Folder = new(PublishAsync, LazyThreadSafetyMode.ExecutionAndPublication);

    public static Task<string> FolderAsync() => Folder.Value;

    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ModelGateway.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("ModelGateway.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>The dotnet host that runs the tests; a full path, so a process without PATH finds it.</summary>
    public static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }

        return Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "/usr/share/dotnet/dotnet";
    }

    private static async Task<string> PublishAsync()
    {
#if DEBUG
        const string configuration = "Debug";
#else
        const string configuration = "Release";
#endif
        var output = Directory.CreateTempSubdirectory("modelgateway-published-").FullName;
        var project = Path.Combine(RepositoryRoot(), "src", "ModelGateway", "ModelGateway.csproj");
        var start = new ProcessStartInfo(DotnetHost(), ["publish", project, "-c", configuration, "--no-build", "-o", output, "-nologo", "-v", "quiet"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var publish = Process.Start(start)!;
        var stdout = publish.StandardOutput.ReadToEndAsync();
        var stderr = publish.StandardError.ReadToEndAsync();
        await publish.WaitForExitAsync();
        if (publish.ExitCode != 0)
        {
            throw new InvalidOperationException($"dotnet publish failed ({publish.ExitCode}): {await stdout} {await stderr}");
        }

        // As in the image: nobody may write beside the binary.
        MakeReadOnly(output);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(output);
        return output;
    }

    /// <summary>Files 0444 and folders 0555, like a read-only root file system seen by a non-root user.</summary>
    public static void MakeReadOnly(string folder)
    {
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        foreach (var directory in Directory.EnumerateDirectories(folder, "*", SearchOption.AllDirectories).Append(folder))
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
    }

    public static void TryDelete(string folder)
    {
        try
        {
            foreach (var directory in Directory.EnumerateDirectories(folder, "*", SearchOption.AllDirectories).Append(folder))
            {
                File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            Directory.Delete(folder, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Temp files; the OS cleans them.
        }
    }
}

/// <summary>
/// One replica as a container runs it: <c>dotnet ModelGateway.dll</c> from the published folder,
/// started there (the image's working directory), configured only through environment variables and
/// mounted files, optionally as an unprivileged user. It can be stopped with SIGTERM, killed with
/// SIGKILL, and started again on the same port, as an orchestrator does.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class GatewayReplica : IAsyncDisposable
{
    /// <summary>The unprivileged user and group the tests run the gateway as when they run as root (nobody/nogroup).</summary>
    public const int UnprivilegedId = 65534;

    private readonly string _appFolder;
    private readonly IReadOnlyDictionary<string, string> _environment;
    private readonly bool _unprivileged;
    private readonly ConcurrentQueue<string> _output = new();
    private Process? _process;

    private GatewayReplica(string name, string appFolder, int port, IReadOnlyDictionary<string, string> environment, bool unprivileged)
    {
        Name = name;
        _appFolder = appFolder;
        Port = port;
        _environment = environment;
        _unprivileged = unprivileged;
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        Http = NewClient();
    }

    public string Name { get; }

    public int Port { get; }

    public Uri BaseAddress { get; }

    /// <summary>A client talking to this replica directly (not through the load balancer).</summary>
    public HttpClient Http { get; }

    /// <summary>Every line the process wrote to stdout or stderr, across restarts.</summary>
    public IReadOnlyCollection<string> Output => _output;

    public string OutputText => string.Join('\n', _output);

    public int? ProcessId => _process is { HasExited: false } process ? process.Id : null;

    /// <summary>
    /// Starts a replica listening on <c>0.0.0.0:port</c> like the image (ASPNETCORE_URLS), with only
    /// <paramref name="environment"/> and a minimal PATH/HOME in its environment.
    /// </summary>
    public static async Task<GatewayReplica> StartAsync(string name, IReadOnlyDictionary<string, string> environment, bool unprivileged = false, int? port = null)
    {
        var replica = await CreateAsync(name, environment, unprivileged, port);
        await replica.StartProcessAsync();
        return replica;
    }

    /// <summary>A replica not started yet (<see cref="StartProcessAsync"/> starts it): a load balancer can watch it come up.</summary>
    public static async Task<GatewayReplica> CreateAsync(string name, IReadOnlyDictionary<string, string> environment, bool unprivileged = false, int? port = null)
        => new(name, await PublishedGateway.FolderAsync(), port ?? RedisServer.FreePort(), environment, unprivileged);

    public HttpClient NewClient() => new(new SocketsHttpHandler { ResponseDrainTimeout = TimeSpan.Zero, UseCookies = false, PooledConnectionLifetime = TimeSpan.FromSeconds(30) })
    {
        BaseAddress = BaseAddress,
        Timeout = TimeSpan.FromSeconds(30),
    };

    /// <summary>Starts the process (again, after a stop) and waits until <c>/healthz/ready</c> answers 200.</summary>
    public async Task StartProcessAsync()
    {
        var dotnet = PublishedGateway.DotnetHost();
        var dll = Path.Combine(_appFolder, "ModelGateway.dll");
        var asUser = _unprivileged && Environment.UserName == "root";
        var start = asUser
            ? new ProcessStartInfo("setpriv", [$"--reuid={UnprivilegedId}", $"--regid={UnprivilegedId}", "--clear-groups", "--", dotnet, dll])
            : new ProcessStartInfo(dotnet, [dll]);
        start.WorkingDirectory = _appFolder;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;

        // Nothing inherited from the test runner: what a container gets is what the image and the manifest set.
        start.Environment.Clear();
        start.Environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        start.Environment["HOME"] = asUser ? "/nonexistent" : Path.GetTempPath();
        start.Environment["ASPNETCORE_URLS"] = $"http://0.0.0.0:{Port}";
        foreach (var (key, value) in _environment)
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, line) => Keep(line.Data);
        process.ErrorDataReceived += (_, line) => Keep(line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(45))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"replica {Name} exited with code {process.ExitCode} while starting:\n{OutputText}");
            }

            try
            {
                using var ready = await Http.GetAsync("healthz/ready");
                if (ready.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // A slow first answer on a busy machine.
            }

            await Task.Delay(100);
        }

        throw new InvalidOperationException($"replica {Name} did not become ready:\n{OutputText}");
    }

    /// <summary>Sends SIGTERM, as Kubernetes and docker stop do.</summary>
    public async Task SignalTerminateAsync()
    {
        var pid = _process?.Id ?? throw new InvalidOperationException("not running");
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]))!;
        await kill.WaitForExitAsync();
    }

    /// <summary>Waits for the process to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        var process = _process ?? throw new InvalidOperationException("not started");
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"replica {Name} did not exit within {timeout}:\n{OutputText}");
        }

        return process.ExitCode;
    }

    /// <summary>SIGTERM, then the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        await SignalTerminateAsync();
        return await WaitForExitAsync(timeout);
    }

    /// <summary>SIGKILL: the process gets no chance to drain or flush, as in a node failure or an OOM kill.</summary>
    public async Task KillHardAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    private void Keep(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await KillHardAsync();
        _process?.Dispose();
    }
}
