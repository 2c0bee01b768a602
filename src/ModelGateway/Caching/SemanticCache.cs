using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.State.Redis;
using ModelGateway.Wire;
using StackExchange.Redis;

namespace ModelGateway.Caching;

/// <summary>
/// The semantic cache, on top of the exact one: a prompt is embedded with the route's embeddings
/// deployment, and the most similar stored prompt of the same route, generation and scope owner is
/// found by cosine similarity (unit vectors, so a SIMD dot product). At or above the route's threshold,
/// that prompt's exact-cache entry answers. Each replica keeps a bounded index per (route, owner); the
/// vectors persist in Redis (one hash per route generation), are loaded when a route is first seen, and
/// new ones are published on <c>mg:cache:semantic</c> so that replicas converge.
/// </summary>
internal sealed partial class SemanticCache : IHostedService
{
    public static readonly RedisChannel Channel = RedisChannel.Literal("mg:cache:semantic");
    private const char Separator = '\u001f';
    private static readonly TimeSpan EmbedTimeout = TimeSpan.FromSeconds(10);

    private readonly RoutingConfigManager _config;
    private readonly GatewayOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly RedisConnection? _redis;
    private readonly ILogger<SemanticCache> _logger;
    private readonly ConcurrentDictionary<string, SemanticIndex> _indexes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Task> _loaded = new(StringComparer.Ordinal);

    private readonly Resilience.FailoverExecutor _executor;
    private readonly Routing.Router _router;
    private readonly State.IRateLimiter _limiter;
    private readonly State.IUsageRecorder _usage;

    // One embeddings route per chat route of the current routing file: they go with the routes they serve.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<ModelRoute, ModelRoute> _embeddingRoutes = [];

    public SemanticCache(
        RoutingConfigManager config,
        GatewayOptions options,
        TimeProvider timeProvider,
        ILogger<SemanticCache> logger,
        Resilience.FailoverExecutor executor,
        Routing.Router router,
        State.IRateLimiter limiter,
        State.IUsageRecorder usage,
        RedisConnection? redis = null)
    {
        _executor = executor;
        _router = router;
        _limiter = limiter;
        _usage = usage;
        _config = config;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
        _redis = redis;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _config.Changed += LoadRoutes;
        if (_redis is not null)
        {
            await new RedisChannelSubscription(_redis, Channel, OnMessage).StartAsync().ConfigureAwait(false);
        }

        if (_config.IsLoaded)
        {
            LoadRoutes(_config.Current);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _config.Changed -= LoadRoutes;
        return Task.CompletedTask;
    }

    /// <summary>
    /// Whether a request may be answered semantically: never with tools (or tool traffic), images or
    /// documents, nor with a temperature above the route's bound (absent counts as 1, most APIs' default).
    /// </summary>
    public static bool Eligible(ChatRequest request, SemanticSettings settings)
    {
        if (request.Tools.Count > 0 || (request.Temperature ?? 1.0) > settings.MaxTemperature)
        {
            return false;
        }

        foreach (var message in request.Messages)
        {
            foreach (var part in message.Parts)
            {
                if (part is not TextPart)
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>The canonical prompt text that is embedded: the system text and each message's text, by role.</summary>
    public static string PromptText(ChatRequest request)
    {
        var text = new StringBuilder();
        foreach (var part in request.System)
        {
            text.Append("system: ").Append(part.Text).Append('\n');
        }

        foreach (var message in request.Messages)
        {
            text.Append(message.Role.ToString().ToLowerInvariant()).Append(": ");
            foreach (var part in message.Parts)
            {
                if (part is TextPart t)
                {
                    text.Append(t.Text);
                }
            }

            text.Append('\n');
        }

        return text.ToString();
    }

    /// <summary>The most similar stored prompt at or above the threshold: its exact-cache key and similarity.</summary>
    public async ValueTask<(string Key, float Similarity)?> FindAsync(string route, CacheSettings settings, string owner, float[] vector)
    {
        await EnsureLoadedAsync(route, settings).ConfigureAwait(false);
        return _indexes.TryGetValue(IndexKey(route, settings.Generation, owner), out var index) ? index.Best(vector, settings.Semantic!.Threshold) : null;
    }

    /// <summary>Whether this replica holds any prompt of the route's current generation for the owner.</summary>
    internal bool Holds(string route, CacheSettings settings, string owner)
        => _indexes.TryGetValue(IndexKey(route, settings.Generation, owner), out var index) && index.Count > 0;

    /// <summary>Forgets a prompt whose exact entry is gone (expired or purged).</summary>
    public void Forget(string route, CacheSettings settings, string owner, string key)
    {
        if (_indexes.TryGetValue(IndexKey(route, settings.Generation, owner), out var index))
        {
            index.Remove(key);
        }
    }

    /// <summary>Adds a stored answer's prompt to the index here, in Redis, and on the other replicas.</summary>
    public async ValueTask AddAsync(string route, CacheSettings settings, string owner, string key, float[] vector)
    {
        Index(route, settings.Generation, owner, settings.Semantic!.MaxEntries).Add(key, vector);
        if (_redis is not { IsAvailable: true })
        {
            return;
        }

        var value = owner + Separator + Convert.ToBase64String(MemoryMarshal.AsBytes(vector.AsSpan()));
        try
        {
            var hash = HashKey(route, settings.Generation);
            var db = _redis.Database;
            await _redis.WaitAsync(db.HashSetAsync(hash, key, value), "semantic cache").ConfigureAwait(false);
            // The hash outlives its newest entry by the route's TTL; a prompt whose entry expired first is dropped when found.
            await _redis.WaitAsync(db.KeyExpireAsync(hash, settings.Ttl), "semantic cache").ConfigureAwait(false);
            var message = string.Join(Separator, route, settings.Generation, settings.Semantic.MaxEntries.ToString(CultureInfo.InvariantCulture), key, value);
            await _redis.WaitAsync(_redis.Subscriber.PublishAsync(Channel, message), "semantic cache").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _redis.ReportFailure(ex);
            LogPersistFailed(_logger, route, ex);
        }
    }

    /// <summary>
    /// Embeds the prompt with the route's embeddings deployment, as a client's embeddings request would go:
    /// routed (circuit, limits), through the failover executor with the chat route's resilience (timeouts,
    /// retries), and recorded in the calling key's usage as an embeddings request on that deployment, with
    /// its tokens and cost. A unit vector, or null when the call failed: the chat request then goes on as
    /// a semantic miss, never as an error.
    /// </summary>
    public async ValueTask<float[]?> EmbedAsync(GatewayRequest chat, string text, SemanticSettings settings, CancellationToken cancellationToken)
    {
        var deployment = settings.Deployment;
        var http = new DefaultHttpContext();
        http.Request.Method = HttpMethods.Post;
        http.Request.Scheme = "http";
        http.Request.Path = "/v1/embeddings";
        using var request = new GatewayRequest(http, OpenAIChatProtocol.Instance, Operation.Embeddings, chat.RequestId + "-embed", _timeProvider.GetTimestamp());
        request.Caller = chat.Caller;
        var json = JsonSerializer.SerializeToUtf8Bytes(new EmbeddingCall(deployment.Name, text), SemanticJsonContext.Default.EmbeddingCall);
        var body = ArrayPool<byte>.Shared.Rent(json.Length);
        json.CopyTo(body, 0);
        request.SetBody(body, json.Length);
        if (!OpenAIChatProtocol.Instance.TryParse(request.Body, Operation.Embeddings, _options.MaxJsonDepth, out request.Info, out _))
        {
            return null;
        }

        request.Catalog = chat.Catalog;
        request.Route = _embeddingRoutes.GetValue(chat.Route!, route => EmbeddingRoute(route, deployment));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(EmbedTimeout < request.Route.Resilience.TotalTimeout ? EmbedTimeout : request.Route.Resilience.TotalTimeout);
        try
        {
            request.Decision = _router.Decide(request, request.Route);
            if (request.Decision.Ranked.Length == 0)
            {
                LogEmbedFailed(_logger, deployment.Name, "the embeddings deployment is out of rotation (" + request.Decision.Blocking + ")", null);
                request.StatusCode = StatusCodes.Status503ServiceUnavailable;
                return null;
            }

            var outcome = await _executor.ExecuteAsync(request, timeout.Token).ConfigureAwait(false);
            await using (outcome.ConfigureAwait(false))
            {
                if (!outcome.IsSuccess || outcome.Deployment is not { } served)
                {
                    request.StatusCode = outcome.Error?.Status ?? StatusCodes.Status502BadGateway;
                    request.ErrorCode = outcome.Error?.Code;
                    LogEmbedFailed(_logger, deployment.Name, outcome.Error?.Message ?? "no answer", null);
                    return null;
                }

                request.ServedBy = served;
                float[]? vector;
                TokenUsage usage;
                if (outcome.Embeddings is { } embeddings)
                {
                    vector = embeddings.Vectors.Count > 0 ? embeddings.Vectors[0] : null;
                    usage = embeddings.Usage;
                }
                else
                {
                    vector = ReadOpenAIVector(outcome.Body.Span);
                    usage = outcome.Facts.HasUsage ? outcome.Facts.Usage : default;
                }

                if (!usage.Reported)
                {
                    // A provider that reports no usage for embeddings is billed on the gateway's estimate of the input.
                    usage = new TokenUsage { Input = (Encoding.UTF8.GetByteCount(text) + 3) / 4 };
                }

                request.Usage = usage;
                request.Cost = served.Pricing.IsHourly ? 0 : served.Pricing.Cost(usage);
                request.StatusCode = StatusCodes.Status200OK;
                request.StreamCompleted = vector is not null;
                return vector is null ? null : Normalized(vector);
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or JsonException or InvalidDataException or UpstreamErrorException or InvalidOperationException
                                       or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            request.StatusCode = ex is OperationCanceledException ? StatusCodes.Status504GatewayTimeout : StatusCodes.Status502BadGateway;
            LogEmbedFailed(_logger, deployment.Name, ex.Message, ex);
            return null;
        }
        finally
        {
            await SettleAsync(request).ConfigureAwait(false);
        }
    }

    // The embeddings call is the caller's: its tokens go to the deployment's window and its usage and cost to the key's report.
    private async ValueTask SettleAsync(GatewayRequest request)
    {
        try
        {
            if (request.ServedBy is { } served)
            {
                await _limiter.SettleDeploymentAsync(served, request.DeploymentAdmission, request.Usage.Input + request.Usage.Output).ConfigureAwait(false);
            }

            if (request.StatusCode != 0)
            {
                await _usage.RecordAsync(request, _timeProvider.GetElapsedTime(request.StartTimestamp)).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogEmbedFailed(_logger, request.Route?.Name ?? string.Empty, "its usage could not be recorded: " + ex.Message, ex);
        }
    }

    // The route an embeddings call of a semantic lookup takes: the embeddings deployment alone, named after it
    // (so usage reports it as that deployment's embeddings), with the chat route's resilience.
    private ModelRoute EmbeddingRoute(ModelRoute chat, Deployment deployment)
    {
        var route = new ModelRoute
        {
            Name = deployment.Name,
            Description = "semantic cache embeddings for " + chat.Name,
            Strategy = RoutingStrategyKind.Priority,
            StrategyName = "priority",
            Targets = [deployment],
            Weights = [1],
            Slo = null,
            CostWeight = 0,
            LatencyWeight = 0,
            Exploration = 0,
            ExpectedOutputTokens = 0,
            AllowedTiers = null,
            AllowedRegions = null,
            RequiredTags = null,
            Resilience = chat.Resilience,
            IsAuto = false,
            Capabilities = Capabilities.Embeddings,
        };
        route.Pipeline = _executor.BuildPipeline(route);
        return route;
    }

    private static float[]? ReadOpenAIVector(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        using var doc = JsonDocument.ParseValue(ref reader);
        if (!doc.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array || data.GetArrayLength() == 0
            || !data[0].TryGetProperty("embedding", out var embedding) || embedding.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var vector = new float[embedding.GetArrayLength()];
        var i = 0;
        foreach (var value in embedding.EnumerateArray())
        {
            vector[i++] = value.GetSingle();
        }

        return vector;
    }

    private static float[]? Normalized(float[] vector)
    {
        var norm = TensorPrimitives.Norm<float>(vector);
        if (norm <= 0 || float.IsNaN(norm))
        {
            return null;
        }

        TensorPrimitives.Divide(vector, norm, vector);
        return vector;
    }

    private static string IndexKey(string route, string generation, string owner) => route + Separator + generation + Separator + owner;

    private static RedisKey HashKey(string route, string generation) => $"mg:cache:sem:{route}:{generation}";

    private SemanticIndex Index(string route, string generation, string owner, int maxEntries)
        => _indexes.GetOrAdd(IndexKey(route, generation, owner), static (_, max) => new SemanticIndex(max), maxEntries);

    private void LoadRoutes(GatewayCatalog catalog)
    {
        foreach (var route in catalog.RouteList)
        {
            if (route.Cache is { Semantic: not null } settings)
            {
                _ = EnsureLoadedAsync(route.Name, settings);
            }
        }
    }

    // Once per route generation and replica: the prompts every replica stored, read from Redis.
    private Task EnsureLoadedAsync(string route, CacheSettings settings)
        => _redis is null ? Task.CompletedTask : _loaded.GetOrAdd(route + Separator + settings.Generation, _ => LoadAsync(route, settings));

    private async Task LoadAsync(string route, CacheSettings settings)
    {
        if (_redis is not { IsAvailable: true })
        {
            return;
        }

        try
        {
            var entries = await _redis.WaitAsync(_redis.Database.HashGetAllAsync(HashKey(route, settings.Generation)), "semantic cache").ConfigureAwait(false);
            foreach (var entry in entries)
            {
                Apply(route, settings.Generation, settings.Semantic!.MaxEntries, entry.Name!, entry.Value!);
            }

            LogLoaded(_logger, entries.Length, route);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Not loaded now: tried again on the next lookup.
            _loaded.TryRemove(route + Separator + settings.Generation, out _);
            _redis.ReportFailure(ex);
        }
    }

    private void Apply(string route, string generation, int maxEntries, string key, string value)
    {
        var bar = value.IndexOf(Separator, StringComparison.Ordinal);
        if (bar < 0)
        {
            return;
        }

        try
        {
            var bytes = Convert.FromBase64String(value[(bar + 1)..]);
            var vector = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
            Index(route, generation, value[..bar], maxEntries).Add(key, vector);
        }
        catch (FormatException)
        {
            // An entry another version wrote in another shape: skipped.
        }
    }

    // route, generation, max entries, key, owner + vector: applied by every replica (the publisher's own is a no-op re-add).
    private void OnMessage(RedisValue message)
    {
        var parts = ((string?)message ?? string.Empty).Split(Separator, 5);
        if (parts.Length == 5 && int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var max))
        {
            Apply(parts[0], parts[1], max, parts[3], parts[4]);
        }
    }

    private sealed record EmbeddingCall(string Model, string Input)
    {
        public string EncodingFormat => "float";
    }

    [System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
    [System.Text.Json.Serialization.JsonSerializable(typeof(EmbeddingCall))]
    private sealed partial class SemanticJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

    [LoggerMessage(EventId = 2610, Level = LogLevel.Warning, Message = "Semantic cache: embedding with {Deployment} failed ({Detail}); the request is served without it")]
    private static partial void LogEmbedFailed(ILogger logger, string deployment, string detail, Exception? exception);

    [LoggerMessage(EventId = 2611, Level = LogLevel.Warning, Message = "Semantic cache: a prompt of route {Route} could not be written to Redis; other replicas will not find it")]
    private static partial void LogPersistFailed(ILogger logger, string route, Exception exception);

    [LoggerMessage(EventId = 2612, Level = LogLevel.Information, Message = "Semantic cache: {Count} stored prompts of route {Route} loaded from Redis")]
    private static partial void LogLoaded(ILogger logger, int count, string route);
}

/// <summary>
/// One route generation and owner's prompts on this replica: at most <c>maxEntries</c> unit vectors, the
/// oldest dropped first, searched by a SIMD dot product (cosine similarity of unit vectors).
/// </summary>
internal sealed class SemanticIndex(int maxEntries)
{
    private readonly Lock _gate = new();
    private readonly LinkedList<(string Key, float[] Vector)> _entries = new();
    private readonly Dictionary<string, LinkedListNode<(string Key, float[] Vector)>> _byKey = new(StringComparer.Ordinal);

    public void Add(string key, float[] vector)
    {
        lock (_gate)
        {
            if (_byKey.Remove(key, out var existing))
            {
                _entries.Remove(existing);
            }

            _byKey[key] = _entries.AddLast((key, vector));
            while (_entries.Count > maxEntries)
            {
                _byKey.Remove(_entries.First!.Value.Key);
                _entries.RemoveFirst();
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    public void Remove(string key)
    {
        lock (_gate)
        {
            if (_byKey.Remove(key, out var node))
            {
                _entries.Remove(node);
            }
        }
    }

    public (string Key, float Similarity)? Best(float[] vector, float threshold)
    {
        string? best = null;
        var bestSimilarity = float.MinValue;
        lock (_gate)
        {
            foreach (var (key, stored) in _entries)
            {
                if (stored.Length != vector.Length)
                {
                    continue;
                }

                var similarity = TensorPrimitives.Dot<float>(stored, vector);
                if (similarity > bestSimilarity)
                {
                    (best, bestSimilarity) = (key, similarity);
                }
            }
        }

        return best is not null && bestSimilarity >= threshold ? (best, bestSimilarity) : null;
    }
}
