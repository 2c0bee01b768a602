using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using ModelGateway.FakeUpstream.Internal;

namespace ModelGateway.FakeUpstream;

/// <summary>
/// A real HTTP server on 127.0.0.1 that speaks the wire formats of OpenAI, Azure OpenAI, Anthropic, Gemini,
/// Vertex AI and AWS Bedrock, records what it receives, streams with controllable timing and injects faults.
/// </summary>
public sealed class FakeUpstreamServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly BehaviorRegistry _behaviors;
    private readonly RequestRecorder _recorder;
    private readonly CancellationTokenSource _shutdown;
    private int _disposed;

    private FakeUpstreamServer(WebApplication app, BehaviorRegistry behaviors, RequestRecorder recorder, CancellationTokenSource shutdown, int port)
    {
        _app = app;
        _behaviors = behaviors;
        _recorder = recorder;
        _shutdown = shutdown;
        Port = port;
        BaseUri = new Uri($"http://127.0.0.1:{port}/");
        OpenAIBaseUrl = $"http://127.0.0.1:{port}/v1";
        AzureEndpoint = $"http://127.0.0.1:{port}";
        AnthropicBaseUrl = $"http://127.0.0.1:{port}";
        GeminiBaseUrl = $"http://127.0.0.1:{port}";
        VertexBaseUrl = $"http://127.0.0.1:{port}";
        BedrockEndpoint = $"http://127.0.0.1:{port}";
    }

    public int Port { get; }

    /// <summary><c>http://127.0.0.1:{port}/</c></summary>
    public Uri BaseUri { get; }

    /// <summary><c>http://127.0.0.1:{port}/v1</c>, the base URL an OpenAI client is pointed at.</summary>
    public string OpenAIBaseUrl { get; }

    /// <summary><c>http://127.0.0.1:{port}</c>, the resource endpoint an Azure OpenAI client is pointed at.</summary>
    public string AzureEndpoint { get; }

    /// <summary>
    /// <c>http://127.0.0.1:{port}</c>, the base URL an Anthropic client is pointed at (it adds <c>/v1/messages</c>).
    /// </summary>
    public string AnthropicBaseUrl { get; }

    /// <summary>
    /// <c>http://127.0.0.1:{port}</c>, the Gemini API base URL (the client adds <c>/v1beta/models/{model}:{method}</c>).
    /// </summary>
    public string GeminiBaseUrl { get; }

    /// <summary>
    /// <c>http://127.0.0.1:{port}</c>, the Vertex AI base URL (the client adds
    /// <c>/v1/projects/{p}/locations/{l}/publishers/{google|anthropic}/models/{m}:{method}</c>).
    /// </summary>
    public string VertexBaseUrl { get; }

    /// <summary>
    /// <c>http://127.0.0.1:{port}</c>, the Bedrock Runtime endpoint (the client adds <c>/model/{modelId}/converse</c>).
    /// </summary>
    public string BedrockEndpoint { get; }

    /// <summary>Used when no queued or per-model behaviour applies.</summary>
    public UpstreamBehavior DefaultBehavior
    {
        get => _behaviors.Default;
        set => _behaviors.Default = value;
    }

    /// <summary>Every request recorded so far, in arrival order (a copy).</summary>
    public IReadOnlyList<RecordedRequest> Requests => _recorder.Snapshot();

    /// <summary>Number of requests received since start or the last <see cref="ClearRecorded"/>.</summary>
    public int RequestCount => _recorder.Count;

    /// <summary>Starts Kestrel on 127.0.0.1 and returns once it is listening.</summary>
    public static async Task<FakeUpstreamServer> StartAsync(FakeUpstreamOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new FakeUpstreamOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(options.Port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.Port, IPEndPoint.MaxPort);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.EmbeddingDimensions, 1);

        // The empty builder reads no configuration or environment (ASPNETCORE_URLS and friends cannot interfere)
        // and registers no logging providers.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(FakeUpstreamServer).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        // Warnings and errors only, and on stderr: the program's stdout carries just its "listening on" line.
        builder.Logging.AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace).SetMinimumLevel(LogLevel.Warning);
        // In-process hosts must not take over the test process's Ctrl+C or SIGTERM.
        builder.Services.AddSingleton<IHostLifetime, NoSignalLifetime>();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxConcurrentConnections = null;
            kestrel.Limits.MaxConcurrentUpgradedConnections = null;
            kestrel.Limits.MaxRequestBodySize = null;
            // The fake must never cut a slow client off on its own: only behaviours decide that.
            kestrel.Limits.MinRequestBodyDataRate = null;
            kestrel.Limits.MinResponseDataRate = null;
            kestrel.Listen(IPAddress.Loopback, options.Port, listen => listen.Protocols = HttpProtocols.Http1);
        });

        var app = builder.Build();
        var behaviors = new BehaviorRegistry { Outages = new OutageSchedule(TimeProvider.System) };
        var recorder = new RequestRecorder();
        var shutdown = new CancellationTokenSource();
        var handler = new RequestHandler(options, behaviors, recorder, TimeProvider.System, shutdown.Token);
        app.Run(handler.HandleAsync);

        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            shutdown.Dispose();
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new FakeUpstreamServer(app, behaviors, recorder, shutdown, new Uri(address).Port) { _slots = handler.Slots };
    }

    /// <summary>Sets a sticky behaviour for one model (as <see cref="RecordedRequest.Model"/> names it on its wire).</summary>
    public void SetBehaviorForModel(string upstreamModel, UpstreamBehavior behavior)
    {
        ArgumentNullException.ThrowIfNull(upstreamModel);
        ArgumentNullException.ThrowIfNull(behavior);
        _behaviors.SetForModel(upstreamModel, behavior);
    }

    public void ClearBehaviorForModel(string upstreamModel)
    {
        ArgumentNullException.ThrowIfNull(upstreamModel);
        _behaviors.ClearForModel(upstreamModel);
    }

    /// <summary>
    /// Enforces a sliding-window request quota on one model, with that provider's headers (see
    /// <see cref="UpstreamQuota"/>); null removes it. Applies on every wire, over whatever behaviour is chosen.
    /// </summary>
    public void SetQuota(string upstreamModel, UpstreamQuota? quota)
    {
        ArgumentNullException.ThrowIfNull(upstreamModel);
        _behaviors.SetQuota(upstreamModel, quota, TimeProvider.System);
    }

    /// <summary>How many requests the model's quota has answered with 429.</summary>
    public long QuotaRefusals(string upstreamModel) => _behaviors.QuotaRefusals(upstreamModel);

    /// <summary>
    /// Schedules an outage of one model: from <paramref name="start"/> after now, for <paramref name="duration"/>,
    /// every request for it is answered with <paramref name="statusCode"/> and the wire's own error body (OpenAI's
    /// <c>server_error</c> for a 503 on the OpenAI wire), ahead of any queued, sticky or default behaviour and of
    /// its quota. Windows run on the fake's own clock, so the outage starts on time however busy the test is.
    /// </summary>
    public void ScheduleOutage(string upstreamModel, TimeSpan start, TimeSpan duration, int statusCode = 503)
    {
        ArgumentNullException.ThrowIfNull(upstreamModel);
        ArgumentOutOfRangeException.ThrowIfLessThan(start, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(duration, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(statusCode, 400);
        _behaviors.Outages!.Add(upstreamModel, start, duration, statusCode);
    }

    /// <summary>Requests answered with a scheduled outage's status so far (all models).</summary>
    public long OutageRefusals => _behaviors.Outages!.Refused;

    /// <summary>Queues a one-shot behaviour for the next request of any model.</summary>
    public void Enqueue(UpstreamBehavior behavior)
    {
        ArgumentNullException.ThrowIfNull(behavior);
        _behaviors.Enqueue(behavior);
    }

    /// <summary>Queues a one-shot behaviour for the next request of one model; it goes before the global queue.</summary>
    public void Enqueue(string upstreamModel, UpstreamBehavior behavior)
    {
        ArgumentNullException.ThrowIfNull(upstreamModel);
        ArgumentNullException.ThrowIfNull(behavior);
        _behaviors.Enqueue(upstreamModel, behavior);
    }

    /// <summary>
    /// Completes with the first request matching <paramref name="predicate"/>, including ones already recorded;
    /// throws <see cref="TimeoutException"/> when none arrives in time.
    /// </summary>
    public Task<RecordedRequest> WaitForRequestAsync(Func<RecordedRequest, bool> predicate, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        return _recorder.WaitAsync(predicate, timeout);
    }

    private SlotGate? _slots;

    /// <summary>With <see cref="FakeUpstreamOptions.Slots"/>: model requests running now.</summary>
    public int SlotsRunning => _slots?.Running ?? 0;

    /// <summary>With <see cref="FakeUpstreamOptions.Slots"/>: model requests waiting for a slot now.</summary>
    public int SlotsWaiting => _slots?.Waiting ?? 0;

    /// <summary>
    /// With <see cref="FakeUpstreamOptions.Slots"/>: the most model requests ever inside the box at once, running
    /// or queued for a slot. At most the slot count when nobody sends it more than it can run.
    /// </summary>
    public int MaxConcurrent => _slots?.MaxInside ?? 0;

    /// <summary>
    /// With <see cref="FakeUpstreamOptions.Slots"/>: how long a model request held its slot on average, from taking it
    /// to its last byte written: the box's real service time, so what its slots can really carry is slots ÷ this.
    /// </summary>
    public TimeSpan MeanSlotTime => _slots?.MeanSlotTime ?? TimeSpan.Zero;

    /// <summary>With <see cref="FakeUpstreamOptions.Slots"/>: how many times <c>GET /metrics</c> was answered.</summary>
    public long MetricsScrapes => _slots?.Scrapes ?? 0;

    /// <summary>Forgets recorded requests and resets <see cref="RequestCount"/>.</summary>
    public void ClearRecorded() => _recorder.Clear();

    /// <summary>Stops Kestrel at once, aborting any response still being streamed.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _shutdown.CancelAsync().ConfigureAwait(false);
        // An already-cancelled token makes Kestrel abort open connections instead of draining them.
        await _app.StopAsync(new CancellationToken(canceled: true)).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _shutdown.Dispose();
    }

    private sealed class NoSignalLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
