using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace ModelGateway.Wire;

/// <summary>
/// An error as OpenAI's clients expect it: <c>{"error":{"message","type","param","code"}}</c> with the
/// matching HTTP status. SDKs map the status to their exception types and honour
/// <c>Retry-After</c> and <c>x-should-retry</c>.
/// </summary>
internal sealed record ApiError(int Status, string Message, string Type, string? Code, string? Param = null)
{
    /// <summary>When the client may try again; written as <c>Retry-After</c> (seconds) and <c>retry-after-ms</c>.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>Written as <c>x-should-retry</c> so SDK retries do not multiply the gateway's own.</summary>
    public bool? ShouldRetry { get; init; }

    /// <summary>
    /// Why the request was refused, for the access log only (e.g. <c>revoked_key</c> behind a 401):
    /// never sent to the client, and never key material.
    /// </summary>
    public string? LogReason { get; init; }

    public static ApiError BadRequest(in RequestProblem problem) => new(400, problem.Message, "invalid_request_error", problem.Code, problem.Param);

    public static ApiError BadRequest(string message, string? code = null, string? param = null) => new(400, message, "invalid_request_error", code, param);

    public static ApiError UnsupportedMediaType(string? contentType) => new(
        400,
        $"Invalid Content-Type header ({contentType}); expected 'application/json'.",
        "invalid_request_error",
        "invalid_content_type");

    public static ApiError ModelNotFound(string model) => new(
        404,
        $"The model '{model}' does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
        "model");

    public static ApiError PayloadTooLarge(long limit) => new(
        413,
        $"The request body is larger than the gateway's limit of {limit} bytes.",
        "invalid_request_error",
        "request_too_large");

    public static ApiError NotFound(string path) => new(404, $"Invalid URL ({path}).", "invalid_request_error", "unknown_url");

    public static ApiError MethodNotAllowed(string method, string path) => new(405, $"{method} is not allowed on {path}.", "invalid_request_error", "method_not_allowed");

    public static ApiError Internal() => new(500, "The gateway had an error while processing your request.", "server_error", "internal_error");

    public static ApiError BadGateway(string message, string code = "upstream_error") => new(502, message, "server_error", code) { ShouldRetry = false };

    public static ApiError Unavailable(string message, string code = "no_healthy_deployment", TimeSpan? retryAfter = null) => new(503, message, "server_error", code) { RetryAfter = retryAfter };

    public static ApiError GatewayTimeout(string message) => new(504, message, "timeout", "upstream_timeout") { ShouldRetry = false };

    public static ApiError RateLimited(string message, TimeSpan retryAfter, string type = "requests") => new(429, message, type, "rate_limit_exceeded") { RetryAfter = retryAfter, ShouldRetry = true };

    /// <summary>Writes the error as the whole response. The response must not have started.</summary>
    public Task WriteAsync(HttpContext context) => WriteAsync(context, Status, static (error, output) => error.WriteJson(output));

    /// <summary>
    /// Writes the error as the whole response in another API's shape: <paramref name="status"/> and the body
    /// are that API's, the retry headers and the access log's record of the error the same for every API.
    /// </summary>
    public Task WriteAsync(HttpContext context, int status, Action<ApiError, System.Buffers.IBufferWriter<byte>> writeBody)
    {
        // The access log reads the error a request was answered with from here, whoever wrote it.
        context.Features.Set(this);
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        var headers = response.Headers;
        if (RetryAfter is { } retryAfter)
        {
            var seconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds));
            headers["retry-after"] = seconds.ToString(CultureInfo.InvariantCulture);
            headers["retry-after-ms"] = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
        }

        if (ShouldRetry is { } shouldRetry)
        {
            headers["x-should-retry"] = shouldRetry ? "true" : "false";
        }

        var writer = new ArrayBufferWriter<byte>(256);
        writeBody(this, writer);
        response.ContentLength = writer.WrittenCount;
        return response.Body.WriteAsync(writer.WrittenMemory).AsTask();
    }

    /// <summary>Writes <c>{"error":{...}}</c>.</summary>
    public void WriteJson(IBufferWriter<byte> output)
    {
        using var json = new Utf8JsonWriter(output, JsonOutput.Options);
        json.WriteStartObject();
        json.WritePropertyName("error"u8);
        json.WriteStartObject();
        json.WriteString("message"u8, Message);
        json.WriteString("type"u8, Type);
        if (Param is null)
        {
            json.WriteNull("param"u8);
        }
        else
        {
            json.WriteString("param"u8, Param);
        }

        if (Code is null)
        {
            json.WriteNull("code"u8);
        }
        else
        {
            json.WriteString("code"u8, Code);
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }
}
