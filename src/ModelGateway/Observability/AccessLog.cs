using Microsoft.Extensions.Options;
using ModelGateway.Forwarding;

namespace ModelGateway.Observability;

/// <summary>
/// One structured line per request (category <c>ModelGateway.AccessLog</c>). A model call gets the
/// full line (who, which route and deployment, the outcome, tokens, cost and timings); every other
/// request, refused ones included, gets a short line from <see cref="AccessLogMiddleware"/>. Never
/// the key's secret, never the prompt.
/// </summary>
internal sealed partial class AccessLog(ILoggerFactory loggerFactory, IOptions<ObservabilityOptions> options)
{
    private const int MaxPathLength = 256;

    private readonly ILogger _logger = loggerFactory.CreateLogger("ModelGateway.AccessLog");
    private readonly bool _enabled = options.Value.AccessLog;

    /// <summary>Whether <c>Observability:AccessLog</c> is on (the level is checked per line).</summary>
    public bool Enabled => _enabled;

    public void Write(GatewayRequest request, double elapsedMs)
    {
        // The model call's line replaces the middleware's short one: one line per request, never two.
        request.HttpContext.Features.Set(AccessLogWritten.Instance);
        if (!_enabled || !_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        LogRequest(
            _logger,
            request.RequestId,
            request.HttpContext.Request.Path.Value ?? string.Empty,
            request.Protocol.Api,
            request.Caller.Name,
            request.Caller.Team,
            request.Route?.Name,
            request.ServedBy?.Name,
            request.ServedBy?.Provider.Name,
            request.StatusCode,
            request.ErrorCode,
            request.Info.Stream,
            request.Usage.Input,
            request.Usage.Output,
            request.Usage.CacheRead,
            request.Usage.CacheWrite,
            request.Usage.Reported,
            Math.Round(request.Cost, 8),
            Math.Round(elapsedMs, 2),
            Math.Round(request.TimeToFirstToken.TotalMilliseconds, 2),
            request.Attempts.Count,
            request.Continued,
            request.Admission is { Allowed: false } refused ? refused.RejectionReason : request.HttpContext.Features.Get<Wire.ApiError>()?.LogReason);
    }

    /// <summary>The line for a request no model handler logged: refusals, listings, admin, health, unknown paths.</summary>
    public void WriteRequest(HttpContext context, int status, string? errorCode, string? reason, double elapsedMs)
    {
        if (!_enabled || !_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        var caller = context.Features.Get<State.CallerIdentity>();
        var path = context.Request.Path.Value ?? string.Empty;
        LogOtherRequest(
            _logger,
            context.TraceIdentifier,
            context.Request.Method,
            path.Length <= MaxPathLength ? path : string.Concat(path.AsSpan(0, MaxPathLength), "…"),
            caller?.Name,
            caller?.Team,
            status,
            errorCode,
            reason,
            Math.Round(elapsedMs, 2));
    }

    [LoggerMessage(EventId = 101, Level = LogLevel.Information,
        Message = "{RequestId} {Method} {Path} key={Key} team={Team} status={Status} error={ErrorCode} reason={Reason} latency={LatencyMs}ms")]
    private static partial void LogOtherRequest(
        ILogger logger,
        string requestId,
        string method,
        string path,
        string? key,
        string? team,
        int status,
        string? errorCode,
        string? reason,
        double latencyMs);

    [LoggerMessage(EventId = 100, Level = LogLevel.Information,
        Message = "{RequestId} {Path} api={Api} key={Key} team={Team} route={Route} deployment={Deployment} provider={Provider} status={Status} error={ErrorCode} stream={Stream} tokens={InputTokens}/{OutputTokens} cached={CachedTokens} cache_write={CacheWriteTokens} usage_reported={UsageReported} cost={CostUsd} latency={LatencyMs}ms ttft={TtftMs}ms attempts={Attempts} continued={Continued} reason={Reason}")]
    private static partial void LogRequest(
        ILogger logger,
        string requestId,
        string path,
        string api,
        string key,
        string? team,
        string? route,
        string? deployment,
        string? provider,
        int status,
        string? errorCode,
        bool stream,
        long inputTokens,
        long outputTokens,
        long cachedTokens,
        long cacheWriteTokens,
        bool usageReported,
        double costUsd,
        double latencyMs,
        double ttftMs,
        int attempts,
        bool continued,
        string? reason);
}

/// <summary>Request feature: the model handler wrote this request's access-log line.</summary>
internal sealed class AccessLogWritten
{
    public static readonly AccessLogWritten Instance = new();

    private AccessLogWritten()
    {
    }
}
