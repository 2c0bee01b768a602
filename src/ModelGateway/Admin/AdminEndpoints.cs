using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using ModelGateway.State;
using ModelGateway.Wire;

namespace ModelGateway.Admin;

/// <summary>
/// The admin API: virtual keys (create, list, read, update, revoke) and usage reports. It needs the
/// master key, is absent when none is set, and can be confined to its own port (<c>Admin:Port</c>).
/// </summary>
internal static class AdminEndpoints
{
    public static IEndpointRouteBuilder MapAdminEndpoints(this IEndpointRouteBuilder endpoints, AdminOptions options)
    {
        if (!options.Enabled)
        {
            return endpoints;
        }

        var admin = endpoints.MapGroup("/admin").AddEndpointFilter<MasterKeyFilter>();
        if (options.Port > 0)
        {
            admin.RequireHost($"*:{options.Port}");
        }

        admin.MapPost("/keys", static (HttpContext context, KeyAdministration keys) => keys.CreateAsync(context));
        admin.MapGet("/keys", static (HttpContext context, KeyAdministration keys) => keys.ListAsync(context));
        admin.MapGet("/keys/{id}", static (HttpContext context, string id, KeyAdministration keys) => keys.GetAsync(context, id));
        admin.MapPatch("/keys/{id}", static (HttpContext context, string id, KeyAdministration keys) => keys.UpdateAsync(context, id));
        admin.MapDelete("/keys/{id}", static (HttpContext context, string id, KeyAdministration keys) => keys.RevokeAsync(context, id));
        admin.MapGet("/usage", static (HttpContext context, UsageReports usage) => usage.WriteAsync(context, ownKeyOnly: false));

        // Caching: purge the response cache by route, key, team, or everything.
        admin.MapDelete("/cache", static (HttpContext context, Caching.ResponseCache cache) => cache.PurgeEndpointAsync(context));
        return endpoints;
    }

    /// <summary><c>GET /v1/usage</c>: a key reads its own usage.</summary>
    public static IEndpointRouteBuilder MapOwnUsage(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/v1/usage", static (HttpContext context, UsageReports usage) => usage.WriteAsync(context, ownKeyOnly: true));
        return endpoints;
    }
}

/// <summary>Lets only the master key through, compared in constant time.</summary>
internal sealed class MasterKeyFilter(IOptions<AdminOptions> options) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var header = context.HttpContext.Request.Headers.Authorization.ToString();
        var presented = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : string.Empty;
        if (presented.Length == 0 || !KeySecrets.Equal(presented, options.Value.MasterKey!))
        {
            await new ApiError(401, "The admin API needs the master key: Authorization: Bearer <master key>.", "invalid_request_error", "invalid_api_key")
            {
                LogReason = presented.Length == 0 ? "missing_key" : "wrong_master_key",
            }.WriteAsync(context.HttpContext);

            // Results.Empty, not null: a null result is serialised as JSON onto the 401 already sent, and throws.
            return Results.Empty;
        }

        return await next(context);
    }
}

/// <summary>Creates, edits and revokes virtual keys.</summary>
internal sealed partial class KeyAdministration(IKeyStore store, TimeProvider timeProvider, ILogger<KeyAdministration> logger)
{
    private static readonly string[] Tiers = ["iaas", "paas", "saas"];

    public async Task CreateAsync(HttpContext context)
    {
        var request = await ReadAsync(context);
        if (request is null)
        {
            return;
        }

        if (string.IsNullOrWhiteSpace(request.Name))
        {
            await ApiError.BadRequest("A key needs a name.", "missing_required_parameter", "name").WriteAsync(context);
            return;
        }

        var now = timeProvider.GetUtcNow();
        if (Validate(request, now) is { } invalid)
        {
            await invalid.WriteAsync(context);
            return;
        }

        var secret = KeySecrets.Generate();
        var key = new VirtualKey { Id = KeySecrets.NewId(), Name = request.Name!, Hint = KeySecrets.Hint(secret), CreatedAt = now };
        Apply(key, request);
        var hash = KeySecrets.Hash(secret);
        if (!await SaveAsync(context, key, hash))
        {
            return;
        }

        LogCreated(logger, key.Id, key.Name, key.Team ?? string.Empty);
        key.Key = secret;
        context.Response.StatusCode = StatusCodes.Status201Created;
        await WriteAsync(context, key);
    }

    public async Task ListAsync(HttpContext context)
    {
        IReadOnlyList<VirtualKey> keys;
        try
        {
            keys = await store.ListAsync(context.RequestAborted);
        }
        catch (KeyStoreUnavailableException)
        {
            await StoreUnavailable().WriteAsync(context);
            return;
        }

        context.Response.ContentType = "application/json";
        await using (var json = new Utf8JsonWriter(context.Response.BodyWriter, JsonOutput.Options))
        {
            json.WriteStartObject();
            json.WriteString("object", "list");
            json.WritePropertyName("data");
            JsonSerializer.Serialize(json, keys.ToList(), KeyJsonContext.Default.ListVirtualKey);
            json.WriteEndObject();
        }

        await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    public async Task GetAsync(HttpContext context, string id)
    {
        if (await FindAsync(context, id) is { } key)
        {
            await WriteAsync(context, key);
        }
    }

    public async Task UpdateAsync(HttpContext context, string id)
    {
        var key = await FindAsync(context, id);
        if (key is null)
        {
            return;
        }

        var request = await ReadAsync(context);
        if (request is null)
        {
            return;
        }

        if (Validate(request, timeProvider.GetUtcNow()) is { } invalid)
        {
            await invalid.WriteAsync(context);
            return;
        }

        if (request.Name is not null)
        {
            key.Name = request.Name;
        }

        Apply(key, request);
        if (await SaveAsync(context, key, key.Hash))
        {
            LogUpdated(logger, key.Id);
            await WriteAsync(context, key);
        }
    }

    public async Task RevokeAsync(HttpContext context, string id)
    {
        var key = await FindAsync(context, id);
        if (key is null)
        {
            return;
        }

        key.RevokedAt ??= timeProvider.GetUtcNow();
        if (await SaveAsync(context, key, key.Hash))
        {
            LogRevoked(logger, key.Id, key.Name);
            await WriteAsync(context, key);
        }
    }

    private async Task<VirtualKey?> FindAsync(HttpContext context, string id)
    {
        try
        {
            var key = await store.GetAsync(id, context.RequestAborted);
            if (key is null)
            {
                await new ApiError(404, $"No key with id '{id}'.", "invalid_request_error", "key_not_found", "id").WriteAsync(context);
            }

            return key;
        }
        catch (KeyStoreUnavailableException)
        {
            await StoreUnavailable().WriteAsync(context);
            return null;
        }
    }

    private async Task<bool> SaveAsync(HttpContext context, VirtualKey key, string hash)
    {
        try
        {
            key.Key = null;
            await store.SaveAsync(key, hash, context.RequestAborted);
            return true;
        }
        catch (KeyStoreUnavailableException)
        {
            await StoreUnavailable().WriteAsync(context);
            return false;
        }
    }

    private static ApiError StoreUnavailable() => ApiError.Unavailable("The key store (Redis) is unreachable; try again shortly.", "key_store_unavailable", TimeSpan.FromSeconds(1));

    private static async Task<KeyRequest?> ReadAsync(HttpContext context)
    {
        try
        {
            var request = await JsonSerializer.DeserializeAsync(context.Request.Body, KeyJsonContext.Default.KeyRequest, context.RequestAborted);
            if (request is null)
            {
                await ApiError.BadRequest("The body must be a JSON object.").WriteAsync(context);
            }

            return request;
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path ? path[2..] : null;
            await ApiError.BadRequest($"Invalid key request{(field is null ? string.Empty : $" at '{field}'")}: {ex.Message.Split(" Path:")[0]}", "invalid_request", field).WriteAsync(context);
            return null;
        }
    }

    private static ApiError? Validate(KeyRequest request, DateTimeOffset now)
    {
        if (request.Name is { } name && (name.Trim().Length == 0 || name.Length > 128))
        {
            return ApiError.BadRequest("'name' must be 1 to 128 characters.", "invalid_value", "name");
        }

        if (request.Rpm is <= 0 || request.Tpm is <= 0 || request.MaxParallelRequests is <= 0)
        {
            return ApiError.BadRequest("Limits (rpm, tpm, max_parallel_requests) must be greater than 0; leave them out for no limit.", "invalid_value");
        }

        if (request.BudgetDailyUsd is < 0 || request.BudgetMonthlyUsd is < 0)
        {
            return ApiError.BadRequest("Budgets must not be negative.", "invalid_value");
        }

        if (request.ExpiresAt is { } expires && expires <= now)
        {
            return ApiError.BadRequest("'expires_at' is in the past.", "invalid_value", "expires_at");
        }

        if (request.Models?.Exists(string.IsNullOrWhiteSpace) == true)
        {
            return ApiError.BadRequest("'models' holds an empty pattern.", "invalid_value", "models");
        }

        if (request.Constraints?.Tiers?.Exists(t => Array.IndexOf(Tiers, t) < 0) == true)
        {
            return ApiError.BadRequest("'constraints.tiers' takes iaas, paas and saas.", "invalid_value", "constraints.tiers");
        }

        return null;
    }

    private static void Apply(VirtualKey key, KeyRequest request)
    {
        key.Team = request.Team ?? key.Team;
        key.Owner = request.Owner ?? key.Owner;
        key.Models = request.Models ?? key.Models;
        key.Rpm = request.Rpm ?? key.Rpm;
        key.Tpm = request.Tpm ?? key.Tpm;
        key.MaxParallelRequests = request.MaxParallelRequests ?? key.MaxParallelRequests;
        key.BudgetDailyUsd = request.BudgetDailyUsd ?? key.BudgetDailyUsd;
        key.BudgetMonthlyUsd = request.BudgetMonthlyUsd ?? key.BudgetMonthlyUsd;
        key.ExpiresAt = request.ExpiresAt ?? key.ExpiresAt;
        key.Metadata = request.Metadata ?? key.Metadata;
        key.Constraints = request.Constraints ?? key.Constraints;
        key.AllowSloOverride = request.AllowSloOverride ?? key.AllowSloOverride;
    }

    private static async Task WriteAsync(HttpContext context, VirtualKey key)
    {
        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(context.Response.Body, key, KeyJsonContext.Default.VirtualKey, context.RequestAborted);
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Created key {KeyId} ({KeyName}, team {Team})")]
    private static partial void LogCreated(ILogger logger, string keyId, string keyName, string team);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Updated key {KeyId}")]
    private static partial void LogUpdated(ILogger logger, string keyId);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Revoked key {KeyId} ({KeyName})")]
    private static partial void LogRevoked(ILogger logger, string keyId, string keyName);
}

/// <summary>Usage reports over a date range, grouped by key, team, model, deployment or day.</summary>
internal sealed class UsageReports(IUsageQuery usage, TimeProvider timeProvider)
{
    public async Task WriteAsync(HttpContext context, bool ownKeyOnly)
    {
        var query = context.Request.Query;
        var today = DateOnly.FromDateTime(timeProvider.GetUtcNow().UtcDateTime);
        if (!TryDate(query["from"], today.AddDays(-6), out var from) || !TryDate(query["to"], today, out var to) || to < from || to.DayNumber - from.DayNumber > 366)
        {
            await ApiError.BadRequest("'from' and 'to' are dates (yyyy-MM-dd), from before to, at most a year apart.", "invalid_value", "from").WriteAsync(context);
            return;
        }

        var groupText = query["group_by"].ToString();
        UsageGrouping grouping;
        switch (groupText)
        {
            case "" or "model": grouping = UsageGrouping.Model; groupText = "model"; break;
            case "key" when !ownKeyOnly: grouping = UsageGrouping.Key; break;
            case "team" when !ownKeyOnly: grouping = UsageGrouping.Team; break;
            case "deployment": grouping = UsageGrouping.Deployment; break;
            case "day": grouping = UsageGrouping.Day; break;
            default:
                await ApiError.BadRequest($"'group_by' takes {(ownKeyOnly ? "model, deployment or day" : "key, team, model, deployment or day")}.", "invalid_value", "group_by").WriteAsync(context);
                return;
        }

        var caller = context.Features.Get<CallerIdentity>() ?? CallerIdentity.Anonymous;
        var keyId = ownKeyOnly ? caller.KeyId ?? "anonymous" : NullIfEmpty(query["key"]);
        var filter = new UsageFilter(from, to, grouping, keyId, ownKeyOnly ? null : NullIfEmpty(query["team"]), NullIfEmpty(query["model"]), NullIfEmpty(query["deployment"]));
        IReadOnlyList<UsageRow> rows;
        try
        {
            rows = await usage.QueryAsync(filter, context.RequestAborted);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            await ApiError.Unavailable("The usage store (Redis) is unreachable; try again shortly.", "usage_store_unavailable", TimeSpan.FromSeconds(1)).WriteAsync(context);
            return;
        }

        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.BodyWriter, JsonOutput.Options);
        json.WriteStartObject();
        json.WriteString("object", "list");
        json.WriteString("group_by", groupText);
        json.WriteString("from", from.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        json.WriteString("to", to.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        json.WriteStartArray("data");
        foreach (var row in rows)
        {
            json.WriteStartObject();
            json.WriteString(groupText, row.Group);
            json.WriteNumber("requests", row.Requests);
            json.WriteNumber("errors", row.Errors);
            json.WriteNumber("input_tokens", row.InputTokens);
            json.WriteNumber("cached_tokens", row.CachedTokens);
            json.WriteNumber("cache_write_tokens", row.CacheWriteTokens);
            json.WriteNumber("output_tokens", row.OutputTokens);
            json.WriteNumber("reasoning_tokens", row.ReasoningTokens);
            json.WriteNumber("cost_usd", row.CostUsd);
            json.WriteNumber("cache_hits", row.CacheHits);
            json.WriteNumber("cache_saved_tokens", row.CacheSavedTokens);
            json.WriteNumber("cache_saved_usd", row.CacheSavedUsd);
            json.WriteNumber("avg_latency_ms", row.AverageLatencyMs);
            json.WriteNumber("avg_ttft_ms", row.AverageTtftMs);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
        await json.FlushAsync(context.RequestAborted);
    }

    private static bool TryDate(Microsoft.Extensions.Primitives.StringValues value, DateOnly fallback, out DateOnly date)
    {
        if (string.IsNullOrEmpty(value))
        {
            date = fallback;
            return true;
        }

        return DateOnly.TryParseExact(value.ToString(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out date);
    }

    private static string? NullIfEmpty(Microsoft.Extensions.Primitives.StringValues value) => string.IsNullOrEmpty(value) ? null : value.ToString();
}
