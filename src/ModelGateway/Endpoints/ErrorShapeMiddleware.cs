using ModelGateway.Wire;

namespace ModelGateway.Endpoints;

/// <summary>
/// Whatever goes wrong outside the handlers still answers in the client API's error shape (OpenAI's, or
/// Anthropic's under <c>/v1/messages</c>): an unexpected exception becomes a 500 without a stack trace.
/// </summary>
internal sealed partial class ErrorShapeMiddleware(RequestDelegate next, ILogger<ErrorShapeMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (Exception ex) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            LogUnhandled(logger, context.TraceIdentifier, ex);
            context.Response.Clear();
            context.Response.Headers["x-request-id"] = context.TraceIdentifier;
            await Protocols.ClientProtocols.WriteErrorAsync(context, ex is BadHttpRequestException bad
                ? new ApiError(bad.StatusCode, "The request could not be read.", "invalid_request_error", "invalid_request")
                : ApiError.Internal());
        }
    }

    [LoggerMessage(EventId = 2301, Level = LogLevel.Error, Message = "Request {RequestId} failed outside the handlers")]
    private static partial void LogUnhandled(ILogger logger, string requestId, Exception exception);
}
