using System.Buffers;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Net.Http.Headers;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Observability;
using ModelGateway.Providers;
using ModelGateway.Providers.Anthropic;
using ModelGateway.Providers.OpenAI;
using ModelGateway.Resilience;
using ModelGateway.Wire;

namespace ModelGateway.Caching;

/// <summary>The cache's verdict for one request, and what a hit saved.</summary>
internal sealed class CachePlan(CacheSettings settings, string key, string owner, bool lookup, bool store, TimeSpan ttl)
{
    public CacheSettings Settings { get; } = settings;
    public string Key { get; } = key;
    public string Owner { get; } = owner;

    /// <summary>False under <c>Cache-Control: no-cache</c>: the answer is fetched fresh (and still stored).</summary>
    public bool Lookup { get; } = lookup;

    /// <summary>False under <c>no-store</c> or a TTL header of 0.</summary>
    public bool Store { get; } = store;
    public TimeSpan Ttl { get; } = ttl;

    /// <summary>hit, miss, bypass or stored: the <c>x-modelgateway-cache</c> header and the metric's label.</summary>
    public string Status { get; set; } = "miss";

    /// <summary>Answered from the cache (an entry, or a coalesced flight it followed): no provider tokens spent.</summary>
    public bool IsHit { get; private set; }

    /// <summary>Set while this request is the one upstream call identical requests in flight wait for.</summary>
    public Flight? Leading { get; set; }

    /// <summary>The copy of a streamed answer being relayed, when it may be stored.</summary>
    public CapturingBody? Capture { get; set; }

    /// <summary>On a hit: the provider tokens and money the stored answer cost, which this request did not spend.</summary>
    /// <summary>The semantic cache: the prompt's unit vector, stored with the answer this request fetches.</summary>
    public float[]? Vector { get; set; }

    /// <summary>On a semantic hit: the similarity of the stored prompt that answered.</summary>
    public float? Similarity { get; set; }

    public TokenUsage SavedUsage;
    public double SavedCost { get; private set; }

    public void MarkHit(in TokenUsage saved, double cost)
    {
        Status = "hit";
        IsHit = true;
        SavedUsage = saved;
        SavedCost = cost;
    }
}

/// <summary>
/// The exact response cache: decides per request whether the route's cache applies, serves hits in the
/// client's own API from the canonical answer (whatever API filled it), and stores the canonical answer
/// of a complete, successful attempt. Backed by <see cref="HybridCache"/>: in-process, with Redis as the
/// second level when state is in Redis, so replicas share entries. Routes without a <c>cache</c> block
/// never reach it past one null check.
/// </summary>
internal sealed partial class ResponseCache(HybridCache cache, CachePurgeChannel purges, SemanticCache semantics, TimeProvider timeProvider, GatewayOptions options, IMeterFactory meterFactory, ILogger<ResponseCache> logger)
{
    /// <summary>The response header with the cache's verdict.</summary>
    public const string StatusHeader = "x-modelgateway-cache";

    /// <summary>Request header: store this answer for at most this many seconds (0: do not store).</summary>
    public const string TtlHeader = "x-modelgateway-cache-ttl";

    /// <summary>Response header on a semantic hit: the cosine similarity of the stored prompt that answered.</summary>
    public const string SimilarityHeader = "x-modelgateway-cache-similarity";

    private static readonly HybridCacheEntryOptions ReadOnly = new() { Flags = HybridCacheEntryFlags.DisableUnderlyingData | HybridCacheEntryFlags.DisableLocalCacheWrite };

    private readonly CacheMetrics _metrics = new(meterFactory);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Flight> _flights = new(StringComparer.Ordinal);

    /// <summary>The plan for a request whose route has a cache; null when the cache does not apply at all.</summary>
    public CachePlan? Plan(GatewayRequest request)
    {
        if (request.Route?.Cache is not { } settings)
        {
            return null;
        }

        var headers = request.HttpContext.Request.Headers;
        var lookup = true;
        var store = true;
        var ttl = settings.Ttl;
        foreach (var value in headers.CacheControl)
        {
            if (value is null)
            {
                continue;
            }

            if (value.Contains("no-store", StringComparison.OrdinalIgnoreCase))
            {
                lookup = false;
                store = false;
            }
            else if (value.Contains("no-cache", StringComparison.OrdinalIgnoreCase))
            {
                lookup = false;
            }
        }

        if (headers.TryGetValue(TtlHeader, out var ttlHeader)
            && int.TryParse(ttlHeader.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            // The header can shorten the route's TTL, never lengthen it.
            ttl = TimeSpan.FromSeconds(Math.Min(seconds, settings.Ttl.TotalSeconds));
            store &= seconds > 0;
        }

        var cacheable = request.Operation == Operation.ChatCompletions
            && request.Protocol.Wire is WireFormat.OpenAIChat or WireFormat.AnthropicMessages or WireFormat.OpenAIResponses
            && request.Info.N <= 1;
        if (!cacheable || (!lookup && !store) || Continues(request) || !TryKey(request, settings, out var key, out var owner) || !Stateless(request))
        {
            var bypass = new CachePlan(settings, string.Empty, string.Empty, false, false, ttl) { Status = "bypass" };
            request.HttpContext.Response.Headers[StatusHeader] = bypass.Status;
            return bypass;
        }

        var plan = new CachePlan(settings, key, owner, lookup, store, ttl) { Status = lookup ? "miss" : "bypass" };
        request.HttpContext.Response.Headers[StatusHeader] = plan.Status;
        return plan;
    }

    // A Responses follow-up (previous_response_id) continues a conversation kept in a response store: never cached,
    // and known before the canonical request is read.
    private static bool Continues(GatewayRequest request)
        => request.Protocol.Wire == WireFormat.OpenAIResponses && Protocols.Responses.ResponsesProtocol.Exchange(request).PreviousResponseId is not null;

    // A Responses request whose answer depends on state kept upstream (an item_reference, a provider-run tool such
    // as web_search or file_search) is never cached: the key cannot see that state. conversation, prompt and
    // background fail TryKey already (the canonical request cannot carry them).
    private static bool Stateless(GatewayRequest request)
    {
        if (request.Protocol.Wire != WireFormat.OpenAIResponses)
        {
            return true;
        }

        foreach (var dropped in request.Canonical.Dropped)
        {
            if (dropped.StartsWith("tools.", StringComparison.Ordinal) || dropped.StartsWith("input.", StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryKey(GatewayRequest request, CacheSettings settings, out string key, out string owner)
    {
        owner = CacheKey.ScopeOwner(settings.Scope, request.Caller);
        try
        {
            key = CacheKey.For(request.Route!.Name, settings, owner, request.Canonical);
            return true;
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            // A request the canonical form cannot carry is served, just not cached.
            key = string.Empty;
            return false;
        }
    }

    /// <summary>Serves the request from the cache if an entry exists; false on a miss.</summary>
    public async ValueTask<bool> TryServeAsync(GatewayRequest request, CachePlan plan, CancellationToken cancellationToken)
    {
        if (!plan.Lookup)
        {
            _metrics.Count(request.Route!.Name, plan.Status);
            return false;
        }

        var bytes = await ReadAsync(request, plan.Key, cancellationToken).ConfigureAwait(false);
        if (bytes is null && plan.Settings.Semantic is { } semantic && SemanticCache.Eligible(request.Canonical, semantic))
        {
            bytes = await FindSimilarAsync(request, plan, semantic, cancellationToken).ConfigureAwait(false);
        }

        var coalesced = false;
        if (bytes is null || CachedAnswer.Deserialize(bytes) is not { } answer)
        {
            if (!plan.Store)
            {
                _metrics.Count(request.Route!.Name, plan.Status);
                return false;
            }

            // Coalescing: the first miss calls upstream; identical requests arriving meanwhile wait for its answer.
            var mine = new Flight();
            var flight = _flights.GetOrAdd(plan.Key, mine);
            if (ReferenceEquals(flight, mine))
            {
                plan.Leading = mine;
                _metrics.Count(request.Route!.Name, plan.Status);
                return false;
            }

            if (!flight.TryJoin())
            {
                // A flight too large to share with late arrivals: this request makes its own call.
                _metrics.Count(request.Route!.Name, plan.Status);
                return false;
            }

            try
            {
                var following = request.Info.Stream ? await FollowLiveAsync(request, plan, flight, cancellationToken).ConfigureAwait(false) : Following.Whole;
                if (following == Following.Served)
                {
                    return true;
                }

                answer = following == Following.Whole && await WaitAsync(request, flight.Done.Task, cancellationToken).ConfigureAwait(false)
                    ? flight.Done.Task.Result
                    : null;
            }
            finally
            {
                flight.Leave();
            }

            if (answer is null)
            {
                // The call we waited for failed before this request got any of it: it makes its own.
                _metrics.Count(request.Route!.Name, plan.Status);
                return false;
            }

            coalesced = true;
        }

        plan.MarkHit(answer.Usage, answer.Cost);
        _metrics.Hit(request.Route!.Name, coalesced ? "coalesced" : plan.Similarity is null ? "hit" : "semantic", answer.Usage, answer.Cost);
        await ReplayAsync(request, answer, plan.Similarity, cancellationToken).ConfigureAwait(false);
        return true;
    }

    private async ValueTask<byte[]?> ReadAsync(GatewayRequest request, string key, CancellationToken cancellationToken)
    {
        try
        {
            return await cache.GetOrCreateAsync<byte[]?>(key, static _ => ValueTask.FromResult<byte[]?>(null), ReadOnly, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A cache that cannot be read is a miss: the model still answers.
            LogReadFailed(logger, request.RequestId, ex);
            return null;
        }
    }

    // The semantic cache: the entry of the most similar stored prompt, at or above the route's threshold.
    // The prompt's vector is kept on the plan, so that an answer fetched upstream is stored with it.
    private async ValueTask<byte[]?> FindSimilarAsync(GatewayRequest request, CachePlan plan, SemanticSettings semantic, CancellationToken cancellationToken)
    {
        var route = request.Route!;
        plan.Vector = await semantics.EmbedAsync(request, SemanticCache.PromptText(request.Canonical), semantic, cancellationToken).ConfigureAwait(false);
        if (plan.Vector is null || await semantics.FindAsync(route.Name, plan.Settings, plan.Owner, plan.Vector).ConfigureAwait(false) is not { } similar)
        {
            return null;
        }

        var bytes = await ReadAsync(request, similar.Key, cancellationToken).ConfigureAwait(false);
        if (bytes is null)
        {
            // Its entry expired or was purged: the prompt goes too.
            semantics.Forget(route.Name, plan.Settings, plan.Owner, similar.Key);
            return null;
        }

        plan.Similarity = similar.Similarity;
        return bytes;
    }

    // Waits for the leader; a streamed request keeps its connection alive meanwhile. False when the route's total timeout passed first.
    private async Task<bool> WaitAsync(GatewayRequest request, Task task, CancellationToken cancellationToken)
    {
        var route = request.Route!;
        var interval = route.Resilience.KeepAliveInterval;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(route.Resilience.TotalTimeout);
        try
        {
            while (true)
            {
                if (!request.Info.Stream || interval <= TimeSpan.Zero)
                {
                    await task.WaitAsync(deadline.Token).ConfigureAwait(false);
                    return true;
                }

                try
                {
                    await task.WaitAsync(interval, timeProvider, deadline.Token).ConfigureAwait(false);
                    return true;
                }
                catch (TimeoutException)
                {
                    var response = request.HttpContext.Response;
                    Routing.Signals.ServedByNotice.WriteKeepAlive(response, route.Name);
                    await response.BodyWriter.FlushAsync(deadline.Token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private enum Following
    {
        /// <summary>This request was answered (completely, or with an in-stream error after part of the answer).</summary>
        Served,

        /// <summary>The leader's answer is not a stream: wait for the whole of it.</summary>
        Whole,

        /// <summary>Nothing of the answer reached this client and none will: it makes its own upstream call.</summary>
        OwnCall,
    }

    // A streamed follower: reads the leader's stream from its start, in the leader's client wire, and writes
    // each event in this client's own format as it arrives. Nothing is written before the first piece of the
    // answer, so a leader that fails before it leaves this request free to make its own call.
    private async Task<Following> FollowLiveAsync(GatewayRequest request, CachePlan plan, Flight flight, CancellationToken cancellationToken)
    {
        if (!await WaitAsync(request, flight.Started, cancellationToken).ConfigureAwait(false))
        {
            return Following.OwnCall;
        }

        if (!flight.Streaming)
        {
            return Following.Whole;
        }

        if (flight.End == 2)
        {
            return Following.OwnCall;
        }

        var route = request.Route!;
        var context = request.HttpContext;
        var response = context.Response;
        var writer = response.BodyWriter;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(route.Resilience.TotalTimeout);
        await using var body = flight.OpenReader();
        using var decoder = Decoder(flight.Wire, body, flight.Deployment!);
        var builder = new ChatResponseBuilder();
        IStreamEncoder? encoder = null;
        StreamEvent started = default;
        ApiError? failure = null;
        try
        {
            while (failure is null)
            {
                while (decoder.TryRead(out var e))
                {
                    if (e.Kind == StreamEventKind.Error)
                    {
                        failure = e.Error?.Error ?? Broken;
                        break;
                    }

                    builder.Add(e);
                    if (encoder is null)
                    {
                        if (e.Kind == StreamEventKind.Started)
                        {
                            started = e;
                            continue;
                        }

                        if (!e.IsContent)
                        {
                            continue;
                        }

                        encoder = BeginLive(request, started.Name ?? route.Name);
                        encoder.Write(StreamEvent.Started(started.Id, started.Name), writer);
                    }

                    encoder.Write(e, writer);
                }

                if (failure is not null)
                {
                    break;
                }

                if (encoder is not null)
                {
                    await writer.FlushAsync(deadline.Token).ConfigureAwait(false);
                }

                if (!await decoder.FillAsync(deadline.Token).ConfigureAwait(false))
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or System.Text.Json.JsonException)
        {
            failure = Broken;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            failure = new ApiError(504, $"The answer did not finish within the route's total timeout of {Durations.Format(route.Resilience.TotalTimeout)}.", "timeout", "total_timeout");
        }

        if (failure is null && flight.End == 1 && builder.Finished && encoder is not null)
        {
            encoder.Complete(writer);
            await request.Protocol.AnswerReplayedAsync(request, flight.Deployment!.Name, cancellationToken).ConfigureAwait(false);
            await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            request.StatusCode = StatusCodes.Status200OK;
            request.FinishReason = builder.Build().Finish;
            request.StreamCompleted = true;

            // What the answer cost comes with the leader's entry, made right after its stream ended.
            var entry = await WaitAsync(request, flight.Done.Task, cancellationToken).ConfigureAwait(false) ? flight.Done.Task.Result : null;
            plan.MarkHit(entry?.Usage ?? default, entry?.Cost ?? 0);
            _metrics.Hit(route.Name, "coalesced", plan.SavedUsage, plan.SavedCost);
            return Following.Served;
        }

        if (encoder is null)
        {
            return Following.OwnCall;
        }

        // Part of the answer is out: the stream ends in the client's own error event, never as if complete.
        failure ??= Broken;
        LogFollowBroken(logger, request.RequestId, failure.Message);
        request.StatusCode = StatusCodes.Status200OK;
        request.ErrorCode = failure.Code;
        _metrics.Count(route.Name, "coalesced");
        await ResponseRelay.FailStreamAsync(context, failure, timeProvider, options, encoder, request.Protocol).ConfigureAwait(false);
        return Following.Served;
    }

    private static readonly ApiError Broken = new(502, "The answer this request was following broke off before it was complete.", "server_error", "stream_interrupted");

    // A captured answer is in its client's wire: read it back with that wire's decoder.
    private IStreamDecoder Decoder(WireFormat wire, Stream body, Deployment deployment) => wire switch
    {
        WireFormat.AnthropicMessages => new AnthropicStreamDecoder(body, deployment, jsonTool: false, options.MaxUpstreamEventBytes),
        WireFormat.OpenAIResponses => new Protocols.Responses.ResponsesStreamDecoder(body, options.MaxUpstreamEventBytes),
        _ => new OpenAIChunkDecoder(body, deployment, options.MaxUpstreamEventBytes),
    };

    // The first piece of the answer is here: the follower's response starts, as a hit from the flight it follows.
    private IStreamEncoder BeginLive(GatewayRequest request, string model)
    {
        var response = request.HttpContext.Response;
        if (!response.HasStarted)
        {
            response.Headers[StatusHeader] = "hit";
            response.Headers[HeaderNames.Age] = "0";
            response.Headers["x-modelgateway-route"] = request.Route!.Name;
        }

        ResponseRelay.StartEventStream(response);
        return request.Protocol.CreateEncoder(request, model, timeProvider.GetUtcNow().ToUnixTimeSeconds());
    }

    /// <summary>Ends the call this request led, if it did: requests waiting on it without an answer make their own.</summary>
    public void EndFlight(CachePlan plan, CachedAnswer? answer = null)
    {
        if (plan.Leading is not { } flight)
        {
            return;
        }

        plan.Leading = null;
        flight.Finish(complete: false);
        flight.Done.TrySetResult(answer);
        _flights.TryRemove(new KeyValuePair<string, Flight>(plan.Key, flight));
    }

    private async Task ReplayAsync(GatewayRequest request, CachedAnswer answer, float? similarity, CancellationToken cancellationToken)
    {
        var response = request.HttpContext.Response;
        var now = timeProvider.GetUtcNow();
        var age = Math.Max(0, (now.ToUnixTimeMilliseconds() - answer.StoredAt) / 1000);
        if (!response.HasStarted)
        {
            response.Headers[StatusHeader] = "hit";
            response.Headers[HeaderNames.Age] = age.ToString(CultureInfo.InvariantCulture);
            if (similarity is { } s)
            {
                // Answered from a similar request, not this one: how similar it was.
                response.Headers[SimilarityHeader] = s.ToString("0.000", CultureInfo.InvariantCulture);
            }
            response.Headers["x-modelgateway-route"] = request.Route!.Name;
        }

        var model = answer.Model ?? request.Route!.Name;
        var created = now.ToUnixTimeSeconds();
        var canonical = answer.ToResponse(id: null!);
        request.StatusCode = StatusCodes.Status200OK;
        request.FinishReason = answer.Finish;
        if (!request.Info.Stream)
        {
            var body = new ArrayBufferWriter<byte>(1024);
            request.Protocol.WriteResponse(request, canonical, model, created, body);
            await request.Protocol.AnswerReplayedAsync(request, answer.Deployment ?? model, cancellationToken).ConfigureAwait(false);
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/json";
            response.ContentLength = body.WrittenCount;
            await response.Body.WriteAsync(body.WrittenMemory, cancellationToken).ConfigureAwait(false);
            request.StreamCompleted = true;
            return;
        }

        ResponseRelay.StartEventStream(response);
        var writer = response.BodyWriter;
        var encoder = request.Protocol.CreateEncoder(request, model, created);
        foreach (var e in canonical.ToEvents())
        {
            if (e.Kind == StreamEventKind.TextDelta)
            {
                // A few chunks, as a model's stream would have: clients that render deltas see it arrive.
                foreach (var piece in Pieces(canonical.Text))
                {
                    encoder.Write(StreamEvent.Text(piece), writer);
                }

                continue;
            }

            encoder.Write(e, writer);
        }

        encoder.Complete(writer);
        await request.Protocol.AnswerReplayedAsync(request, answer.Deployment ?? model, cancellationToken).ConfigureAwait(false);
        await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        request.StreamCompleted = true;
    }

    // At most four pieces, split between characters (never inside a surrogate pair).
    private static IEnumerable<byte[]> Pieces(string text)
    {
        var size = Math.Max(16, (text.Length + 3) / 4);
        var start = 0;
        while (start < text.Length)
        {
            var length = Math.Min(size, text.Length - start);
            if (start + length < text.Length && char.IsHighSurrogate(text[start + length - 1]))
            {
                length++;
            }

            yield return Encoding.UTF8.GetBytes(text, start, length);
            start += length;
        }
    }

    /// <summary>For a streamed miss that may be stored: keeps a copy of what the relay writes.</summary>
    public static void BeginCapture(GatewayRequest request, CachePlan plan)
    {
        if (!plan.Store || !request.Info.Stream)
        {
            return;
        }

        var features = request.HttpContext.Features;
        var inner = features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()!;

        // SSE framing roughly triples the answer's size; the entry limit applies to the stored answer.
        // A request that leads no flight (no-cache) still copies its answer, into a flight nobody can join.
        var flight = plan.Leading ?? new Flight();
        flight.BeginStream(request.ServedBy!, request.Protocol.Wire, plan.Settings.MaxEntryBytes * 4);
        plan.Capture = new CapturingBody(inner, flight);
        features.Set<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>(plan.Capture);
    }

    /// <summary>
    /// For a non-streamed answer about to be relayed: whether it will be stored (the header must say so
    /// before the body goes), and the canonical answer to store.
    /// </summary>
    public ChatResponse? StorableWhole(GatewayRequest request, CachePlan plan, AttemptOutcome outcome)
    {
        if (!plan.Store || outcome.IsStream || outcome.Deployment is not { } deployment)
        {
            return null;
        }

        ChatResponse? answer = outcome.Answer;
        if (answer is null)
        {
            try
            {
                if (request.Protocol.Wire == WireFormat.OpenAIResponses)
                {
                    // A Responses body passed through from an OpenAI deployment: the adapter reads chat completions only.
                    answer = Protocols.Responses.ResponsesAnswerReader.Read(outcome.Body.Span);
                    if (answer is null)
                    {
                        return null;
                    }
                }
                else
                {
                    answer = deployment.Provider.Adapter.ParseResponse(outcome.Body.Span, new UpstreamRequest(request, deployment, passThrough: true), out var error);
                    if (error is not null)
                    {
                        return null;
                    }
                }
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidDataException or InvalidOperationException or FormatException)
            {
                return null;
            }
        }

        if (!Storable(answer.Finish, plan))
        {
            return null;
        }

        plan.Status = "stored";
        request.HttpContext.Response.Headers[StatusHeader] = plan.Status;
        return answer;
    }

    private static bool Storable(FinishReason finish, CachePlan plan)
        => finish is not (FinishReason.None or FinishReason.ContentFilter) && (finish != FinishReason.Length || plan.Settings.CacheLength);

    /// <summary>
    /// After the relay: stores the answer if it may be. Never an error, a broken or continued stream, an
    /// answer cut by <c>length</c> (unless the route allows it), or one larger than the route's limit.
    /// </summary>
    public async ValueTask StoreAsync(GatewayRequest request, CachePlan plan, ChatResponse? whole)
    {
        // Followers of a live stream finish now (or learn it broke), before the entry is written.
        plan.Capture?.Flight.Finish(request.StatusCode == StatusCodes.Status200OK && request.StreamCompleted && request.ErrorCode is null);
        if (!plan.Store || plan.Status == "hit" || request.StatusCode != StatusCodes.Status200OK || !request.StreamCompleted
            || request.Continued || request.ServedBy is not { } deployment)
        {
            return;
        }

        var answer = whole;
        if (answer is null && plan.Capture is { Flight.Incomplete: false } capture)
        {
            answer = await DecodeAsync(request, deployment, capture.Captured).ConfigureAwait(false);
        }

        if (answer is null)
        {
            return;
        }

        // What the answer cost is what each hit saves (the handler prices the request itself later).
        var cost = deployment.Pricing.IsHourly ? 0 : deployment.Pricing.Cost(request.Usage);
        var entry = CachedAnswer.From(answer, request.Usage, cost, deployment.Name, timeProvider.GetUtcNow().ToUnixTimeMilliseconds());

        // Identical requests waiting on this call get its answer even when it is not stored (cut by length):
        // it is the answer each of them would have been given. The flight ends only after the entry is written,
        // so a request arriving meanwhile either joins the flight or finds the entry, never a gap between them.
        try
        {
            if (!Storable(answer.Finish, plan))
            {
                return;
            }

            var bytes = entry.Serialize();
            if (bytes.Length > plan.Settings.MaxEntryBytes || plan.Capture is { Overflowed: true })
            {
                return;
            }

            var entryOptions = new HybridCacheEntryOptions { Expiration = plan.Ttl, LocalCacheExpiration = plan.Ttl };
            await cache.SetAsync(plan.Key, bytes, entryOptions, [CacheKey.RouteTag(request.Route!.Name), CacheKey.OwnerTag(plan.Owner), CacheKey.RouteOwnerTag(request.Route!.Name, plan.Owner)], CancellationToken.None).ConfigureAwait(false);
            _metrics.Stored(request.Route!.Name);
            if (plan.Vector is { } vector && plan.Settings.Semantic is not null)
            {
                await semantics.AddAsync(request.Route!.Name, plan.Settings, plan.Owner, plan.Key, vector).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            LogWriteFailed(logger, request.RequestId, ex);
        }
        finally
        {
            EndFlight(plan, entry);
        }
    }

    // The copy of a streamed answer is in the client's wire: read it back with that wire's decoder.
    private async Task<ChatResponse?> DecodeAsync(GatewayRequest request, Deployment deployment, ReadOnlyMemory<byte> captured)
    {
        using var body = new MemoryStream(captured.ToArray(), writable: false);
        using (var decoder = Decoder(request.Protocol.Wire, body, deployment))
        {
            var builder = new ChatResponseBuilder();
            try
            {
                while (true)
                {
                    while (decoder.TryRead(out var e))
                    {
                        if (e.Kind == StreamEventKind.Error)
                        {
                            return null;
                        }

                        builder.Add(e);
                    }

                    if (!await decoder.FillAsync(CancellationToken.None).ConfigureAwait(false))
                    {
                        break;
                    }
                }
            }
            catch (Exception ex) when (ex is InvalidDataException or System.Text.Json.JsonException)
            {
                return null;
            }

            return builder.Finished ? builder.Build() : null;
        }
    }

    /// <summary>Admin: drops every entry of a route, of an owner (<c>key:ID</c>, <c>team:NAME</c>), or all of them, on every replica.</summary>
    public ValueTask PurgeAsync(string? route, string? owner, CancellationToken cancellationToken)
        => purges.PurgeAsync(route, owner, cancellationToken);

    /// <summary>
    /// <c>DELETE /admin/cache?route=R&amp;key=ID&amp;team=T</c>: purges the entries of a route, of a key
    /// (key-scoped routes) or a team (team-scoped routes), of both at once, or all of them.
    /// </summary>
    public async Task PurgeEndpointAsync(HttpContext context)
    {
        var query = context.Request.Query;
        string? route = query["route"] is { Count: > 0 } r && !string.IsNullOrEmpty(r) ? r.ToString() : null;
        string? owner = query["key"] is { Count: > 0 } k && !string.IsNullOrEmpty(k) ? "key:" + k
            : query["team"] is { Count: > 0 } t && !string.IsNullOrEmpty(t) ? "team:" + t
            : query["scope"] == "global" ? "global" : null;
        await PurgeAsync(route, owner, context.RequestAborted).ConfigureAwait(false);
        LogPurged(logger, route ?? "*", owner ?? "*");
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        await using var json = new System.Text.Json.Utf8JsonWriter(context.Response.Body);
        json.WriteStartObject();
        json.WriteBoolean("purged"u8, true);
        json.WriteString("route"u8, route);
        json.WriteString("owner"u8, owner);
        json.WriteEndObject();
    }

    [LoggerMessage(EventId = 2620, Level = LogLevel.Warning, Message = "Request {RequestId}: the stream it followed broke off after part of the answer: {Reason}")]
    private static partial void LogFollowBroken(ILogger logger, string requestId, string reason);

    [LoggerMessage(EventId = 2603, Level = LogLevel.Information, Message = "Response cache purged: route {Route}, owner {Owner}")]
    private static partial void LogPurged(ILogger logger, string route, string owner);

    [LoggerMessage(EventId = 2601, Level = LogLevel.Warning, Message = "Request {RequestId}: the response cache could not be read; treated as a miss")]
    private static partial void LogReadFailed(ILogger logger, string requestId, Exception exception);

    [LoggerMessage(EventId = 2602, Level = LogLevel.Warning, Message = "Request {RequestId}: the answer could not be stored in the response cache")]
    private static partial void LogWriteFailed(ILogger logger, string requestId, Exception exception);
}

/// <summary>The cache's metrics: <c>modelgateway.cache.requests</c> by route and result, tokens and money saved by hits.</summary>
internal sealed class CacheMetrics
{
    private readonly Counter<long> _requests;
    private readonly Counter<long> _savedTokens;
    private readonly Counter<double> _savedCost;
    private readonly Counter<long> _stored;

    public CacheMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(GatewayMetrics.MeterName);
        _requests = meter.CreateCounter<long>("modelgateway.cache.requests", "{request}", "Requests on routes with a response cache, by route and result (hit, semantic, coalesced, miss, bypass): each request once.");
        _savedTokens = meter.CreateCounter<long>("modelgateway.cache.saved_tokens", "{token}", "Provider tokens cache hits did not spend, by route and type.");
        _savedCost = meter.CreateCounter<double>("modelgateway.cache.saved", "{USD}", "Money cache hits did not spend, by route.");
        _stored = meter.CreateCounter<long>("modelgateway.cache.stores", "{entry}", "Answers stored in the response cache, by route.");
    }

    public void Count(string route, string result)
    {
        if (_requests.Enabled)
        {
            _requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("result", result));
        }
    }

    /// <summary>A request answered without an upstream call: from an entry (<c>hit</c>) or a flight it followed (<c>coalesced</c>).</summary>
    public void Hit(string route, string result, in TokenUsage usage, double cost)
    {
        Count(route, result);
        if (_savedTokens.Enabled)
        {
            _savedTokens.Add(usage.Input, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("type", "input"));
            _savedTokens.Add(usage.Output, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("type", "output"));
        }

        if (_savedCost.Enabled && cost > 0)
        {
            _savedCost.Add(cost, new KeyValuePair<string, object?>("route", route));
        }
    }

    public void Stored(string route)
    {
        if (_stored.Enabled)
        {
            _stored.Add(1, new KeyValuePair<string, object?>("route", route));
        }
    }
}
