using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using ModelGateway.Configuration;
using ModelGateway.State.Redis;
using StackExchange.Redis;

namespace ModelGateway.Routing.Signals;

/// <summary>
/// Scrapes the Prometheus endpoint of every deployment that declares <c>metrics</c>, once per its interval,
/// and publishes the reading on the deployment's <see cref="LoadSignal"/>. With Redis state one replica
/// scrapes per interval (a <c>SET NX PX</c> lease) and writes the reading to a hash that the others read
/// in their own loop. Nothing here runs on the request path; a failed scrape or Redis call never blocks
/// routing, it only lets the reading go stale.
/// </summary>
internal sealed partial class LoadScraper(
    RoutingConfigManager config,
    IHttpClientFactory httpClients,
    TimeProvider timeProvider,
    IServiceProvider services,
    IMeterFactory meterFactory,
    ILogger<LoadScraper> logger) : BackgroundService
{
    public const string ClientName = "modelgateway-load-metrics";

    /// <summary>How often due scrapes are looked for; far below the smallest interval (100ms).</summary>
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(50);

    private static readonly RedisValue WaitingField = "waiting";
    private static readonly RedisValue RunningField = "running";
    private static readonly RedisValue KvField = "kv";
    private static readonly RedisValue AtField = "at";
    private static readonly RedisValue[] Fields = [WaitingField, RunningField, KvField, AtField];

    // Identifies this replica as the lease holder; only its presence matters, never read back.
    private readonly RedisValue _replica = Environment.MachineName + ":" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + ":" + Guid.NewGuid().ToString("N")[..8];
    private readonly ConcurrentDictionary<LoadSignal, byte> _running = new();
    private RedisConnection? _redis;
    private long _scrapes;

    /// <summary>Scrapes made by this replica (not readings taken from Redis): what tests of the shared lease count.</summary>
    internal long Scrapes => Interlocked.Read(ref _scrapes);

    public static string ReadingKey(string deployment) => "mg:load:{" + deployment + "}";

    public static string LeaseKey(string deployment) => "mg:load:{" + deployment + "}:lease";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _redis = services.GetService<RedisConnection>();
        RegisterGauges();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Tick, timeProvider, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (!config.IsLoaded)
            {
                continue;
            }

            var utcNow = timeProvider.GetUtcNow();
            var now = utcNow.ToUnixTimeMilliseconds();
            var timestamp = timeProvider.GetTimestamp();
            foreach (var deployment in config.Current.DeploymentList)
            {
                // Every deployment, metrics or not: the age of its oldest attempt still waiting for a first byte.
                var live = deployment.State.Latency.Live;
                live.RefreshOldestWait(timestamp);
                if (deployment.Metrics is not { } settings)
                {
                    continue;
                }

                var signal = deployment.State.Load;

                // The server's own queue (scraped here or by another replica) feeds a route objective's TTFT prediction.
                if (signal.FreshAt(utcNow, settings) is { } reading)
                {
                    live.ReportQueue((int)reading.Waiting, (int)reading.Running);
                }

                if (!signal.IsDue(now) || !_running.TryAdd(signal, 0))
                {
                    continue;
                }

                signal.ScheduleNext(now + (long)settings.Interval.TotalMilliseconds);
                _ = RefreshAsync(deployment.Name, settings, signal, stoppingToken);
            }
        }
    }

    // Fresh readings only: a stale one is not what routing acts on, so it is not what a dashboard should plot.
    private void RegisterGauges()
    {
        var meter = meterFactory.Create(Observability.GatewayMetrics.MeterName);
        meter.CreateObservableGauge("modelgateway.deployment.load.waiting", () => Observe(static r => r.Waiting), "{request}",
            "Requests waiting in a self-hosted server's own queue, as last scraped from its metrics endpoint.");
        meter.CreateObservableGauge("modelgateway.deployment.load.running", () => Observe(static r => r.Running), "{request}",
            "Requests running on a self-hosted server, as last scraped from its metrics endpoint.");
        meter.CreateObservableGauge("modelgateway.deployment.load.kv_cache_usage", () => Observe(static r => r.KvUsage ?? double.NaN), "{ratio}",
            "KV-cache use (0..1) of a self-hosted server, as last scraped from its metrics endpoint.");
    }

    private IEnumerable<Measurement<double>> Observe(Func<LoadReading, double> figure)
    {
        if (!config.IsLoaded)
        {
            yield break;
        }

        var now = timeProvider.GetUtcNow();
        foreach (var deployment in config.Current.DeploymentList)
        {
            if (deployment.Metrics is { } settings && deployment.State.Load.FreshAt(now, settings) is { } reading && figure(reading) is var value && !double.IsNaN(value))
            {
                yield return new Measurement<double>(value, new KeyValuePair<string, object?>("deployment", deployment.Name));
            }
        }
    }

    private async Task RefreshAsync(string name, LoadMetricsSettings settings, LoadSignal signal, CancellationToken cancellationToken)
    {
        try
        {
            if (_redis is { IsAvailable: true } redis && await TakeSharedAsync(redis, name, settings, signal).ConfigureAwait(false))
            {
                return;
            }

            var reading = await ScrapeAsync(name, settings, cancellationToken).ConfigureAwait(false);
            if (reading is null)
            {
                signal.Failed();
                return;
            }

            signal.Publish(reading);
            if (_redis is { IsAvailable: true } shared)
            {
                Share(shared, name, settings, reading);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            signal.Failed();
            LogRefreshFailed(logger, name, ex.Message);
        }
        finally
        {
            _running.TryRemove(signal, out _);
        }
    }

    // True when another replica holds this interval's lease: its reading (if any) is taken instead of scraping.
    private async Task<bool> TakeSharedAsync(RedisConnection redis, string name, LoadMetricsSettings settings, LoadSignal signal)
    {
        try
        {
            var db = redis.Database;
            var leased = await redis.WaitAsync(db.StringSetAsync(LeaseKey(name), _replica, settings.Interval, When.NotExists), "load lease").ConfigureAwait(false);
            if (leased)
            {
                return false;
            }

            var values = await redis.WaitAsync(db.HashGetAsync(ReadingKey(name), Fields), "load read").ConfigureAwait(false);
            if (values[3].TryParse(out long at) && values[0].TryParse(out double waiting) && values[1].TryParse(out double running)
                && at > (signal.Reading?.ScrapedAtUnixMs ?? 0))
            {
                signal.Publish(new LoadReading(waiting, running, values[2].TryParse(out double kv) ? kv : null, at));
            }

            return true;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            // Redis is the shortcut, not the source: scrape locally this time.
            redis.ReportFailure(ex);
            return false;
        }
    }

    private void Share(RedisConnection redis, string name, LoadMetricsSettings settings, LoadReading reading)
    {
        HashEntry[] entries =
        [
            new(WaitingField, reading.Waiting),
            new(RunningField, reading.Running),
            new(KvField, reading.KvUsage is { } kv ? kv : RedisValue.EmptyString),
            new(AtField, reading.ScrapedAtUnixMs),
        ];
        var db = redis.Database;
        var key = ReadingKey(name);

        // Fire and forget: the readers tolerate a missing or late write, and the hash ages out with the reading.
        _ = db.HashSetAsync(key, entries, CommandFlags.FireAndForget);
        _ = db.KeyExpireAsync(key, settings.StaleAfter, CommandFlags.FireAndForget);
    }

    private async Task<LoadReading?> ScrapeAsync(string name, LoadMetricsSettings settings, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _scrapes);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        // A slow answer is still worth having while the last reading counts; cutting it at one interval
        // let a busy box (or a busy gateway) lose every scrape and its queue age out of routing.
        timeout.CancelAfter(settings.StaleAfter);
        try
        {
            var client = httpClients.CreateClient(ClientName);
            using var response = await client.GetAsync(settings.Url, HttpCompletionOption.ResponseContentRead, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                LogScrapeFailed(logger, name, "HTTP " + ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
                return null;
            }

            var text = await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false);
            if (!PrometheusLoadParser.TryParse(text, timeProvider.GetUtcNow().ToUnixTimeMilliseconds(), out var reading))
            {
                LogScrapeFailed(logger, name, "no vLLM, TGI or SGLang load metric in the answer");
                return null;
            }

            return reading;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // The URL is the operator's own server; the message names the failure, never credentials (none are sent).
            LogScrapeFailed(logger, name, ex is OperationCanceledException ? "timed out" : ex.Message);
            return null;
        }
    }

    [LoggerMessage(EventId = 2601, Level = LogLevel.Debug, Message = "Load metrics of {Deployment} could not be scraped: {Reason}")]
    private static partial void LogScrapeFailed(ILogger logger, string deployment, string reason);

    [LoggerMessage(EventId = 2602, Level = LogLevel.Warning, Message = "Load signal of {Deployment} could not be refreshed: {Reason}")]
    private static partial void LogRefreshFailed(ILogger logger, string deployment, string reason);
}

/// <summary>Registers the live load signals.</summary>
internal static class LoadSignalsServiceCollectionExtensions
{
    public static IServiceCollection AddLoadSignals(this IServiceCollection services)
    {
        services.AddHttpClient(LoadScraper.ClientName, static client => client.Timeout = TimeSpan.FromSeconds(30));
        services.AddHostedService<LoadScraper>();
        services.AddSingleton<FleetCapacity>();
        return services;
    }
}
