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
using ModelGateway.Providers;
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

    public SemanticCache(RoutingConfigManager config, GatewayOptions options, TimeProvider timeProvider, ILogger<SemanticCache> logger, RedisConnection? redis = null)
    {
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
            await new CacheChannelSubscription(_redis, Channel, OnMessage).StartAsync().ConfigureAwait(false);
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
    /// Embeds the prompt with the route's embeddings deployment, through that deployment's adapter as a
    /// request on the OpenAI embeddings API would go; a unit vector, or null when the deployment failed.
    /// </summary>
    public async ValueTask<float[]?> EmbedAsync(string text, SemanticSettings settings, CancellationToken cancellationToken)
    {
        var deployment = settings.Deployment;
        var adapter = deployment.Provider.Adapter;
        var http = new DefaultHttpContext();
        http.Request.Method = HttpMethods.Post;
        http.Request.Scheme = "http";
        http.Request.Path = "/v1/embeddings";
        using var request = new GatewayRequest(http, OpenAIChatProtocol.Instance, Operation.Embeddings, "semantic-" + Guid.NewGuid().ToString("N")[..12], _timeProvider.GetTimestamp());
        var json = JsonSerializer.SerializeToUtf8Bytes(new EmbeddingCall(deployment.Name, text), SemanticJsonContext.Default.EmbeddingCall);
        var body = ArrayPool<byte>.Shared.Rent(json.Length);
        json.CopyTo(body, 0);
        request.SetBody(body, json.Length);
        if (!OpenAIChatProtocol.Instance.TryParse(request.Body, Operation.Embeddings, _options.MaxJsonDepth, out request.Info, out _))
        {
            return null;
        }

        request.Catalog = _config.Current;
        var passThrough = adapter.PassesThrough(WireFormat.OpenAIChat);
        var call = new UpstreamRequest(request, deployment, passThrough);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(EmbedTimeout);
        try
        {
            await using var response = await adapter.SendAsync(call, timeout.Token).ConfigureAwait(false);
            if (response.Failure != TransportFailure.None || response.Refusal is not null || response.StatusCode is < 200 or > 299)
            {
                LogEmbedFailed(_logger, deployment.Name, response.FailureDetail ?? "status " + response.StatusCode.ToString(CultureInfo.InvariantCulture), null);
                return null;
            }

            using var buffer = new MemoryStream();
            await (await response.GetBodyAsync(timeout.Token).ConfigureAwait(false)).CopyToAsync(buffer, timeout.Token).ConfigureAwait(false);
            var vector = passThrough ? ReadOpenAIVector(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)) : adapter.ParseEmbeddings(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), call, out var error) is { Vectors.Count: > 0 } parsed && error is null ? parsed.Vectors[0] : null;
            return vector is null ? null : Normalized(vector);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or JsonException or InvalidDataException or UpstreamErrorException
                                       or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            LogEmbedFailed(_logger, deployment.Name, ex.Message, ex);
            return null;
        }
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
