using Microsoft.Extensions.Options;
using ModelGateway.Forwarding;

namespace ModelGateway.Observability;

/// <summary>
/// One structured line per request (category <c>ModelGateway.AccessLog</c>): who, which route and
/// deployment, the outcome, tokens, cost and timings. Never the key's secret, never the prompt.
/// </summary>
internal sealed partial class AccessLog(ILoggerFactory loggerFactory, IOptions<ObservabilityOptions> options)
{
    private readonly ILogger _logger = loggerFactory.CreateLogger("ModelGateway.AccessLog");
    private readonly bool _enabled = options.Value.AccessLog;

    public void Write(GatewayRequest request, double elapsedMs)
    {
        if (!_enabled || !_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        LogRequest(
            _logger,
            request.RequestId,
            request.HttpContext.Request.Path.Value ?? string.Empty,
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
            request.Usage.Reported,
            Math.Round(request.Cost, 8),
            Math.Round(elapsedMs, 2),
            Math.Round(request.TimeToFirstToken.TotalMilliseconds, 2),
            request.Attempts.Count,
            request.Continued);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information,
        Message = "{RequestId} {Path} key={Key} team={Team} route={Route} deployment={Deployment} provider={Provider} status={Status} error={ErrorCode} stream={Stream} tokens={InputTokens}/{OutputTokens} cached={CachedTokens} usage_reported={UsageReported} cost={CostUsd} latency={LatencyMs}ms ttft={TtftMs}ms attempts={Attempts} continued={Continued}")]
    private static partial void LogRequest(
        ILogger logger,
        string requestId,
        string path,
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
        bool usageReported,
        double costUsd,
        double latencyMs,
        double ttftMs,
        int attempts,
        bool continued);
}
