using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using ModelGateway.Wire;

namespace ModelGateway.State;

/// <summary>
/// Resolves the caller of every <c>/v1</c> request from its virtual key (<c>Authorization: Bearer</c>,
/// <c>x-api-key</c> as Anthropic's SDKs and Claude Code send it, or <c>api-key</c> as Azure-style SDKs send it). Keys are looked up by the hash of the secret and
/// cached briefly; a change to a key (revoke, edit) reaches every replica's cache at once.
/// </summary>
internal sealed partial class KeyAuthenticator : IDisposable
{
    private static readonly TimeSpan NegativeCacheDuration = TimeSpan.FromSeconds(2);

    private readonly IKeyStore _store;
    private readonly TimeProvider _timeProvider;
    private readonly AuthOptions _auth;
    private readonly AdminOptions _admin;
    private readonly long _cacheTicks;
    private readonly ConcurrentDictionary<string, CacheEntry> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _refreshing = new(StringComparer.Ordinal);
    private long _generation;
    private static readonly CallerIdentity Master = new() { KeyId = "master", Name = "master", AllowSloOverride = true };

    private readonly Observability.GatewayMetrics _metrics;

    public KeyAuthenticator(IKeyStore store, TimeProvider timeProvider, IOptions<AuthOptions> auth, IOptions<AdminOptions> admin, IOptions<StateOptions> state, Observability.GatewayMetrics metrics)
    {
        _metrics = metrics;
        _store = store;
        _timeProvider = timeProvider;
        _auth = auth.Value;
        _admin = admin.Value;
        _cacheTicks = (long)(state.Value.KeyCacheDuration.TotalSeconds * timeProvider.TimestampFrequency);
        _store.Changed += Evict;
    }

    public bool Enabled => _auth.Mode == AuthMode.Keys;

    /// <summary>The caller, or the error to answer with.</summary>
    public async ValueTask<(CallerIdentity? Caller, ApiError? Error)> AuthenticateAsync(HttpContext context)
    {
        if (!Enabled)
        {
            return (CallerIdentity.Anonymous, null);
        }

        var secret = ReadSecret(context.Request);
        if (secret is null)
        {
            _metrics.AuthenticationFailed("missing_key");
            return (null, new ApiError(401,
                IsAnthropicPath(context.Request.Path)
                    ? "x-api-key header is required. Send your gateway key as x-api-key (or as Authorization: Bearer YOUR_KEY)."
                    : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error", null) { LogReason = "missing_key" });
        }

        if (_admin.MasterKey is { Length: > 0 } master && KeySecrets.Equal(secret, master))
        {
            return (Master, null);
        }

        var hash = KeySecrets.Hash(secret);
        var now = _timeProvider.GetTimestamp();
        var cached = _cache.TryGetValue(hash, out var entry);
        var waited = TimeSpan.Zero;
        if (cached && now > entry.ExpiresAt)
        {
            // Past its cache time: answer from the cache and read the key again beside the request, so a
            // cached key never waits on the store (changes are pushed at once; the cache time is the fallback).
            entry = Refresh(hash, entry, now);
        }
        else if (!cached)
        {
            var generation = Volatile.Read(ref _generation);
            VirtualKey? key;
            try
            {
                key = await _store.FindByHashAsync(hash, context.RequestAborted).ConfigureAwait(false);
            }
            catch (KeyStoreUnavailableException)
            {
                // A key seen before keeps working while the store is away; an unknown one cannot be checked.
                _metrics.AuthenticationFailed("store_unavailable");
                return (null, ApiError.Unavailable("The key store is unreachable, so this key cannot be checked; try again shortly.", "key_store_unavailable", TimeSpan.FromSeconds(1)) with { ShouldRetry = true, LogReason = "store_unavailable" });
            }

            waited = _timeProvider.GetElapsedTime(now);
            entry = NewEntry(key, now);
            Store(hash, entry, generation);
        }

        if (entry.Key is null)
        {
            _metrics.AuthenticationFailed("unknown_key");
            return (null, InvalidKey(secret, "Incorrect API key provided", "unknown_key"));
        }

        if (entry.Key.RevokedAt is not null)
        {
            _metrics.AuthenticationFailed("revoked_key");
            return (null, InvalidKey(secret, "This API key has been revoked", "revoked_key"));
        }

        if (entry.Key.ExpiresAt is { } expires && expires <= _timeProvider.GetUtcNow())
        {
            _metrics.AuthenticationFailed("expired_key");
            return (null, InvalidKey(secret, "This API key has expired", "expired_key"));
        }

        // The admission after this lookup may only wait what is left of the request's time on the store.
        return (waited > TimeSpan.Zero && entry.Caller!.HasLimits ? entry.Caller.WithStoreWait(waited) : entry.Caller, null);
    }

    private CacheEntry NewEntry(VirtualKey? key, long now)
        => new(key, key?.ToCaller(), now + (key is null ? (long)(NegativeCacheDuration.TotalSeconds * _timeProvider.TimestampFrequency) : _cacheTicks));

    // A lookup that started before a key changed must not put the old record back: any change since
    // it started (the generation moved) leaves the cache to the next lookup.
    private void Store(string hash, CacheEntry entry, long generation)
    {
        if (Volatile.Read(ref _generation) == generation)
        {
            _cache[hash] = entry;
        }
    }

    private CacheEntry Refresh(string hash, CacheEntry stale, long now)
    {
        if (!_refreshing.TryAdd(hash, 0))
        {
            return stale;
        }

        var generation = Volatile.Read(ref _generation);
        ValueTask<VirtualKey?> lookup;
        try
        {
            lookup = _store.FindByHashAsync(hash, CancellationToken.None);
        }
        catch (KeyStoreUnavailableException)
        {
            _refreshing.TryRemove(hash, out _);
            return stale;
        }

        if (lookup.IsCompletedSuccessfully)
        {
            // An in-process store answers at once: use the fresh record for this request too.
            _refreshing.TryRemove(hash, out _);
            var entry = NewEntry(lookup.Result, now);
            Store(hash, entry, generation);
            return entry;
        }

        _ = CompleteRefreshAsync(hash, lookup, generation);
        return stale;
    }

    private async Task CompleteRefreshAsync(string hash, ValueTask<VirtualKey?> lookup, long generation)
    {
        try
        {
            var key = await lookup.ConfigureAwait(false);
            Store(hash, NewEntry(key, _timeProvider.GetTimestamp()), generation);
        }
        catch (KeyStoreUnavailableException)
        {
            // Still unreachable: the cached record keeps serving, and the next request tries again.
        }
        finally
        {
            _refreshing.TryRemove(hash, out _);
        }
    }

    // logReason names the refusal for the access log; the hint of the key stays in the client's answer only.
    private static ApiError InvalidKey(string secret, string message, string logReason)
        => new(401, $"{message}: {KeySecrets.Hint(secret)}.", "invalid_request_error", "invalid_api_key") { LogReason = logReason };

    private static string? ReadSecret(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var token = authorization[7..].Trim();
            return token.Length > 0 ? token : null;
        }

        // Anthropic's SDKs and Claude Code send x-api-key; Azure-style SDKs api-key.
        var apiKey = request.Headers["x-api-key"].ToString();
        if (apiKey.Length == 0)
        {
            apiKey = request.Headers["api-key"].ToString();
        }

        apiKey = apiKey.Trim();
        return apiKey.Length > 0 ? apiKey : null;
    }

    private static bool IsAnthropicPath(PathString path) => path.StartsWithSegments("/v1/messages", StringComparison.OrdinalIgnoreCase);

    private void Evict(string hash)
    {
        Interlocked.Increment(ref _generation);
        _cache.TryRemove(hash, out _);
    }

    public void Dispose() => _store.Changed -= Evict;

    private readonly record struct CacheEntry(VirtualKey? Key, CallerIdentity? Caller, long ExpiresAt);
}

/// <summary>Authenticates <c>/v1</c> requests and hands the caller on as a request feature.</summary>
internal sealed class KeyAuthenticationMiddleware(RequestDelegate next, KeyAuthenticator authenticator)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (!context.Request.Path.StartsWithSegments("/v1", StringComparison.OrdinalIgnoreCase))
        {
            return next(context);
        }

        // Cached keys (and no auth at all) answer synchronously: no async frame around the rest of the request.
        var authentication = authenticator.AuthenticateAsync(context);
        if (authentication.IsCompletedSuccessfully && authentication.Result is (var caller, null))
        {
            context.Features.Set(caller!);
            return next(context);
        }

        return AwaitedAsync(authentication, context);
    }

    private async Task AwaitedAsync(ValueTask<(CallerIdentity? Caller, ApiError? Error)> authentication, HttpContext context)
    {
        var (caller, error) = await authentication.ConfigureAwait(false);
        if (error is not null)
        {
            await Protocols.ClientProtocols.WriteErrorAsync(context, error).ConfigureAwait(false);
            return;
        }

        context.Features.Set(caller!);
        await next(context).ConfigureAwait(false);
    }
}
