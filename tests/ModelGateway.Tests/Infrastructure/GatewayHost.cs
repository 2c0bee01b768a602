using System.ClientModel;
using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using ModelGateway.Configuration;
using OpenAI;

namespace ModelGateway.Tests.Infrastructure;

/// <summary>
/// The real gateway host on a loopback port, with a routing file in a temp folder. Tests talk to it
/// over HTTP exactly as clients do; nothing inside it is replaced except, where a test asks, the clock.
/// </summary>
internal sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _directory;

    private GatewayHost(WebApplication app, string directory, string? configPath, CapturingLoggerProvider logs)
    {
        _app = app;
        _directory = directory;
        ConfigPath = configPath;
        Logs = logs;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal) + "/");
        Http = NewClient();
    }

    public Uri BaseAddress { get; }

    public HttpClient Http { get; }

    public string? ConfigPath { get; }

    /// <summary>Everything the gateway logged, for asserting that secrets never appear.</summary>
    public CapturingLoggerProvider Logs { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Starts a gateway serving <paramref name="routingYaml"/>; null serves the built-in demo.</summary>
    public static async Task<GatewayHost> StartAsync(string? routingYaml, IDictionary<string, string?>? settings = null, TimeProvider? timeProvider = null, Action<WebApplicationBuilder>? configure = null)
    {
        var directory = Directory.CreateTempSubdirectory("modelgateway-test-").FullName;
        string? configPath = null;
        if (routingYaml is not null)
        {
            configPath = Path.Combine(directory, "routing.yaml");
            await File.WriteAllTextAsync(configPath, routingYaml);
        }

        var logs = new CapturingLoggerProvider();
        var app = GatewayApplication.Create(["--urls", "http://127.0.0.1:0"], builder =>
        {
            var values = new Dictionary<string, string?>
            {
                ["Gateway:ConfigPath"] = configPath ?? string.Empty,
                ["Gateway:ConfigPollInterval"] = "00:00:00.200",
                ["Serilog:MinimumLevel:Default"] = "Information",
                ["Observability:ConsoleLog"] = "false",
                ["Auth:Mode"] = "none",

                // Nothing balances load across in-process hosts: stop at once instead of waiting for one.
                ["Shutdown:Delay"] = "00:00:00",
            };
            foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
            {
                values[key] = value;
            }

            builder.Configuration.AddInMemoryCollection(values);
            builder.Logging.AddProvider(logs);
            if (timeProvider is not null)
            {
                builder.Services.Replace(ServiceDescriptor.Singleton(timeProvider));
            }

            configure?.Invoke(builder);
        });
        await app.StartAsync();
        return new GatewayHost(app, directory, configPath, logs);
    }

    public HttpClient NewClient() => new(new SocketsHttpHandler { ResponseDrainTimeout = TimeSpan.Zero, UseCookies = false })
    {
        BaseAddress = BaseAddress,
        Timeout = TimeSpan.FromSeconds(60),
    };

    /// <summary>An official OpenAI SDK client pointed at the gateway.</summary>
    public OpenAIClient OpenAI(string apiKey = "sk-client-key-not-for-upstream", int maxRetries = 0) => new(
        new ApiKeyCredential(apiKey),
        new OpenAIClientOptions { Endpoint = new Uri(BaseAddress, "v1"), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(maxRetries) });

    public T Service<T>()
        where T : notnull => _app.Services.GetRequiredService<T>();

    /// <summary>Rewrites the routing file and waits until the gateway has taken the edit in (or refused it).</summary>
    public async Task<ReloadResult> EditConfigAsync(string routingYaml)
    {
        var manager = Service<RoutingConfigManager>();
        await File.WriteAllTextAsync(ConfigPath!, routingYaml);
        var result = await manager.ReloadAsync();
        return result ?? throw new InvalidOperationException("no reload happened");
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public async Task<HttpResponseMessage> PostAsync(string path, string json, string? bearer = null, Action<HttpRequestHeaders>? headers = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(json) };
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        headers?.Invoke(request.Headers);
        return await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A watcher may still hold the folder for a moment; the OS cleans temp folders.
        }
    }
}

/// <summary>Keeps every log line the host writes, rendered, for assertions.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public string All => string.Join('\n', _lines);

    /// <summary>
    /// The lines matching <paramref name="match"/> once at least one is written: lines written when a
    /// request completes (the access log) may land just after the client has its response.
    /// </summary>
    public async Task<List<string>> WaitForLinesAsync(Func<string, bool> match, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var found = _lines.Where(match).ToList();
            if (found.Count > 0 || DateTime.UtcNow > deadline)
            {
                // A short grace so a duplicate line would be seen too.
                await Task.Delay(100);
                return _lines.Where(match).ToList();
            }

            await Task.Delay(20);
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
        }
    }
}
