using ModelGateway.Wire;

namespace ModelGateway.Observability;

/// <summary>
/// Gives every request its access-log line, whatever the path and however it ends: a 401 for a bad
/// key (with the reason, so credential stuffing shows in the logs), 403, 404, 405, 413, 429, 400,
/// admin calls, health probes. Model calls log their own fuller line; this one stands back for them.
/// </summary>
internal sealed class AccessLogMiddleware(RequestDelegate next, AccessLog accessLog, TimeProvider timeProvider)
{
    public Task InvokeAsync(HttpContext context) => accessLog.Enabled ? LogAsync(context) : next(context);

    private async Task LogAsync(HttpContext context)
    {
        var started = timeProvider.GetTimestamp();
        string? failure = null;
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch
        {
            // Only what the error-shape middleware could not answer gets here (the response had started, or the client left).
            failure = context.RequestAborted.IsCancellationRequested ? "client_closed_request" : "internal_error";
            throw;
        }
        finally
        {
            if (context.Features.Get<AccessLogWritten>() is null)
            {
                Write(context, failure, timeProvider.GetElapsedTime(started).TotalMilliseconds);
            }
        }
    }

    private void Write(HttpContext context, string? failure, double elapsedMs)
    {
        var status = context.Response.StatusCode;
        var error = context.Features.Get<ApiError>();
        if (failure is not null)
        {
            status = failure == "client_closed_request" ? 499 : StatusCodes.Status500InternalServerError;
        }

        var reason = error?.LogReason;
        if (reason is null && status == StatusCodes.Status401Unauthorized)
        {
            // Refusals that did not say why: whether credentials came at all is what an operator asks first.
            var request = context.Request.Headers;
            reason = request.Authorization.Count > 0 || request.ContainsKey("api-key") ? "invalid_credentials" : "missing_credentials";
        }

        accessLog.WriteRequest(context, status, failure ?? error?.Code ?? error?.Type, reason, elapsedMs);
    }
}
