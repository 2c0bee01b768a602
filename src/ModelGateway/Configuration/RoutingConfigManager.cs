using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace ModelGateway.Configuration;

/// <summary>The result of the latest load or reload, for the ops page and the admin API.</summary>
internal sealed record ReloadResult(DateTimeOffset At, bool Succeeded, int ServingVersion, IReadOnlyList<ConfigError> Errors, IReadOnlyList<ConfigError> Warnings);

/// <summary>
/// Owns the live routing catalog. Loads the routing file at start-up (a bad file stops the process
/// with every error listed), then watches it: a good edit is swapped in whole, without a restart and
/// without touching requests in flight; a bad edit is refused, logged, and the last good catalog
/// keeps serving.
/// </summary>
internal sealed partial class RoutingConfigManager : IHostedService, IDisposable
{
    public const string DemoSource = "built-in demo";

    private readonly CatalogBuilder _builder;
    private readonly GatewayOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RoutingConfigManager> _logger;
    private readonly SemaphoreSlim _reloadGate = new(1, 1);
    private GatewayCatalog? _current;
    private ReloadResult? _lastReload;
    private ITimer? _poll;
    private ITimer? _settle;
    private (long Length, DateTime Written) _seen;
    private (long Length, DateTime Written)[] _secretsSeen = [];
    private string? _lastAttemptHash;
    private bool _secretsChanged;
    private int _version;

    private readonly Observability.GatewayMetrics _metrics;

    public RoutingConfigManager(CatalogBuilder builder, IOptions<GatewayOptions> options, TimeProvider timeProvider, Observability.GatewayMetrics metrics, ILogger<RoutingConfigManager> logger)
    {
        _metrics = metrics;
        _builder = builder;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <summary>The catalog serving now. Read once per request; never null after start.</summary>
    public GatewayCatalog Current => Volatile.Read(ref _current) ?? throw new InvalidOperationException("The routing configuration is not loaded yet.");

    public bool IsLoaded => Volatile.Read(ref _current) is not null;

    public ReloadResult? LastReload => Volatile.Read(ref _lastReload);

    public string? Path => string.IsNullOrWhiteSpace(_options.ConfigPath) ? null : System.IO.Path.GetFullPath(_options.ConfigPath);

    /// <summary>Raised after a new catalog starts serving.</summary>
    public event Action<GatewayCatalog>? Changed;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var path = Path;
        string text;
        if (path is null)
        {
            text = ReadDemo();
            LogDemo(_logger);
        }
        else
        {
            try
            {
                text = File.ReadAllText(path);
                _seen = Stamp(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new ConfigurationLoadException(path, [new ConfigError("$", $"cannot read the routing file: {ex.Message}")]);
            }
        }

        var result = Apply(text, path ?? DemoSource);
        if (!result.Succeeded)
        {
            throw new ConfigurationLoadException(path ?? DemoSource, result.Errors);
        }

        if (path is not null)
        {
            StartPolling();
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _poll?.Dispose();
        _settle?.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Re-reads the file now. Used by the watcher and by tests.</summary>
    public async Task<ReloadResult?> ReloadAsync()
    {
        var path = Path;
        if (path is null)
        {
            return null;
        }

        await _reloadGate.WaitAsync().ConfigureAwait(false);
        try
        {
            string text;
            try
            {
                var seen = Stamp(path);
                if (seen.Length < 0)
                {
                    return Refuse(path, [new ConfigError("$", "the routing file is gone; still serving the last good version")]);
                }

                _seen = seen;
                text = await File.ReadAllTextAsync(path).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                // Editors often write in two steps; the next check will see the finished file.
                LogReadRetry(_logger, path, ex.Message);
                return null;
            }

            var hash = Hash(text);
            var secretsChanged = Interlocked.Exchange(ref _secretsChanged, false);
            if (!secretsChanged && (hash == _current?.ContentHash || hash == _lastAttemptHash))
            {
                return LastReload;
            }

            _lastAttemptHash = hash;
            return Apply(text, path);
        }
        finally
        {
            _reloadGate.Release();
        }
    }

    private ReloadResult Apply(string text, string source)
    {
        var warnings = new List<ConfigError>();
        var document = RoutingConfigLoader.Parse(text, out var errors);
        GatewayCatalog? catalog = null;
        if (document is not null)
        {
            catalog = _builder.Build(document, source, Hash(text), _version + 1, errors, warnings);
        }

        foreach (var warning in warnings)
        {
            LogWarning(_logger, source, warning.ToString());
        }

        if (catalog is null)
        {
            return Refuse(source, errors, warnings);
        }

        _version = catalog.Version;
        _secretsSeen = Stamps(catalog.SecretFiles);
        Volatile.Write(ref _current, catalog);
        var result = new ReloadResult(_timeProvider.GetUtcNow(), true, catalog.Version, [], warnings);
        Volatile.Write(ref _lastReload, result);
        LogLoaded(_logger, source, catalog.Version, catalog.Providers.Count, catalog.Deployments.Count, catalog.Routes.Count);
        _metrics.ConfigReloaded(succeeded: true);
        Changed?.Invoke(catalog);
        return result;
    }

    private ReloadResult Refuse(string source, List<ConfigError> errors, List<ConfigError>? warnings = null)
    {
        var serving = _current?.Version ?? 0;
        var result = new ReloadResult(_timeProvider.GetUtcNow(), false, serving, errors, warnings ?? []);
        Volatile.Write(ref _lastReload, result);
        _metrics.ConfigReloaded(succeeded: false);
        if (_current is not null)
        {
            LogRefused(_logger, source, errors.Count, serving, string.Join(Environment.NewLine, errors));
        }

        return result;
    }

    private void StartPolling()
    {
        // Polling, not FileSystemWatcher: inotify watches the whole directory, so every write beside
        // the routing file (a log, a sidecar's temp file) would wake the gateway; a stat per interval
        // costs nothing and also sees Kubernetes swapping a ConfigMap's symlink.
        _poll = _timeProvider.CreateTimer(_ => Poll(), null, _options.ConfigPollInterval, _options.ConfigPollInterval);
        _settle = _timeProvider.CreateTimer(_ => _ = Task.Run(ReloadAsync), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    private void Poll()
    {
        var path = Path!;
        try
        {
            var seen = Stamp(path);
            if (seen != _seen)
            {
                _seen = seen;
                Trigger();
            }
            else if (_current is { SecretFiles.Length: > 0 } catalog && !Stamps(catalog.SecretFiles).AsSpan().SequenceEqual(_secretsSeen))
            {
                // A key file changed (a rotation): re-read it even though the routing file did not change.
                _secretsSeen = Stamps(catalog.SecretFiles);
                _secretsChanged = true;
                Trigger();
            }
        }
        catch (IOException)
        {
            // Try again at the next tick.
        }
    }

    // An editor may write a file in several steps, and a half-written file can even be valid: wait
    // until the file has been quiet for a moment before reading it.
    private void Trigger() => _settle?.Change(SettleDelay, Timeout.InfiniteTimeSpan);

    private static readonly TimeSpan SettleDelay = TimeSpan.FromMilliseconds(300);

    private static string ReadDemo()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("ModelGateway.demo.yaml")
            ?? throw new InvalidOperationException("The built-in demo configuration is missing from the assembly.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    private static (long Length, DateTime Written)[] Stamps(string[] files)
    {
        var stamps = new (long, DateTime)[files.Length];
        for (var i = 0; i < files.Length; i++)
        {
            stamps[i] = Stamp(files[i]);
        }

        return stamps;
    }

    // Kubernetes mounts ConfigMap and Secret files as symlinks through "..data", and an update swaps
    // that link: FileInfo describes the link itself, which never changes, so describe the file it
    // resolves to.
    private static (long Length, DateTime Written) Stamp(string path)
    {
        FileSystemInfo info = new FileInfo(path);
        if (info.Exists && info.LinkTarget is not null)
        {
            info = info.ResolveLinkTarget(returnFinalTarget: true) ?? info;
        }

        return info is FileInfo { Exists: true } file ? (file.Length, file.LastWriteTimeUtc) : (-1, DateTime.MinValue);
    }

    private static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];

    public void Dispose()
    {
        _poll?.Dispose();
        _settle?.Dispose();
        _reloadGate.Dispose();
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Routing config v{Version} serving from {Source}: {Providers} providers, {Deployments} deployments, {Routes} routes")]
    private static partial void LogLoaded(ILogger logger, string source, int version, int providers, int deployments, int routes);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Error, Message = "Routing config edit in {Source} refused ({Count} errors); still serving v{Version}:\n{Errors}")]
    private static partial void LogRefused(ILogger logger, string source, int count, int version, string errors);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "Routing config {Source}: {Warning}")]
    private static partial void LogWarning(ILogger logger, string source, string warning);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "No routing file given (--config or MODELGATEWAY_CONFIG): serving the built-in demo of simulated deployments")]
    private static partial void LogDemo(ILogger logger);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Debug, Message = "Routing file {Path} could not be read yet ({Reason}); will retry")]
    private static partial void LogReadRetry(ILogger logger, string path, string reason);
}

/// <summary>The routing file could not be loaded at start-up; the message lists every problem.</summary>
public sealed class ConfigurationLoadException(string source, IReadOnlyList<ConfigError> errors)
    : Exception($"The routing config {source} has {errors.Count} error(s):{Environment.NewLine}{string.Join(Environment.NewLine, errors.Select(e => "  " + e))}")
{
    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}
