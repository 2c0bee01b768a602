using System.Globalization;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Providers.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Bedrock;

/// <summary>
/// Reads AWS's errors as Bedrock Runtime sends them: the exception's name in <c>x-amzn-ErrorType</c> (or the
/// body's <c>__type</c>, or a stream's <c>:exception-type</c>) and <c>{"message":..}</c>; and Converse's stop reasons.
/// </summary>
internal static class BedrockErrors
{
    public static UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment, TimeProvider timeProvider)
    {
        var status = response.StatusCode;
        var (bodyType, message) = Parse(body, deployment);
        var type = ExceptionName(response.Header("x-amzn-ErrorType")) ?? ExceptionName(bodyType) ?? DefaultName(status);
        message ??= $"The deployment answered with HTTP {status}.";
        var detail = string.Create(CultureInfo.InvariantCulture, $"HTTP {status} {type}: {SecretScrubber.Truncate(message, 200)}");
        return Classify(type, message, detail, status, OpenAIErrors.ReadRetryAfterHeader(response, timeProvider));
    }

    /// <summary>An exception message in the event stream (<c>:message-type: exception</c>), by its <c>:exception-type</c>.</summary>
    public static UpstreamError InStream(string? exceptionType, ReadOnlySpan<byte> payload, Deployment deployment)
    {
        var (_, message) = Parse(payload, deployment);
        var type = exceptionType is { Length: > 0 } ? char.ToUpperInvariant(exceptionType[0]) + exceptionType[1..] : "InternalServerException";
        message ??= "The deployment reported an error mid-stream.";
        var detail = $"stream exception {type}: {SecretScrubber.Truncate(message, 200)}";
        return Classify(type, message, detail, 200, retryAfter: null);
    }

    /// <summary>An <c>error</c> message in the event stream (<c>:error-code</c>, <c>:error-message</c>): the service broke it.</summary>
    public static UpstreamError StreamError(string? code, string? message, Deployment deployment)
    {
        var text = message is null ? "The deployment broke the stream." : SecretScrubber.Scrub(message, deployment);
        return new(UpstreamErrorKind.ServerError, ApiError.BadGateway("The deployment reported an error: " + SecretScrubber.Truncate(text, 200)),
            $"stream error {code}: {SecretScrubber.Truncate(text, 200)}", 200);
    }

    public static FinishReason MapStopReason(string? reason, bool jsonTool) => reason switch
    {
        "end_turn" or "stop_sequence" => FinishReason.Stop,
        "max_tokens" or "model_context_window_exceeded" => FinishReason.Length,
        "tool_use" => jsonTool ? FinishReason.Stop : FinishReason.ToolCalls,
        "guardrail_intervened" or "content_filtered" => FinishReason.ContentFilter,
        null => FinishReason.None,
        _ => FinishReason.Other,
    };

    private static UpstreamError Classify(string type, string message, string detail, int status, TimeSpan? retryAfter)
    {
        switch (type)
        {
            case "ThrottlingException" or "ServiceQuotaExceededException" or "TooManyRequestsException":
                // Bedrock sends no retry-after; another deployment (region, account) has its own quota.
                var wait = retryAfter ?? TimeSpan.FromSeconds(1);
                return new(UpstreamErrorKind.RateLimited, ApiError.RateLimited("Every deployment of this model is rate limited by its provider.", wait), detail, status, wait);

            case "ServiceUnavailableException" or "InternalServerException" or "InternalFailure" or "ModelNotReadyException"
                or "ModelErrorException" or "ModelStreamErrorException" or "ModelTimeoutException":
                // Listed by name: ModelNotReadyException comes as a 429 and ModelErrorException as a 424.
                return new(UpstreamErrorKind.ServerError,
                    type == "ModelTimeoutException" || status == 504 ? ApiError.GatewayTimeout("The deployment timed out.") : ApiError.BadGateway("The deployment failed to answer."),
                    detail, status, retryAfter);

            case "AccessDeniedException" or "UnrecognizedClientException" or "InvalidSignatureException" or "IncompleteSignatureException"
                or "MissingAuthenticationTokenException" or "ExpiredTokenException" or "InvalidClientTokenId" or "SignatureDoesNotMatch"
                or "ResourceNotFoundException":
                // The gateway's credential, region or model id is wrong: not the client's fault, and another deployment may be fine.
                return Misconfigured(detail, status);

            case "ValidationException" when IsContextLength(message):
                return new(UpstreamErrorKind.ContextLength, ApiError.BadRequest(message, "context_length_exceeded", "messages"), detail, status);

            case "ValidationException" when IsModelMisconfigured(message):
                return Misconfigured(detail, status);
        }

        switch (status)
        {
            case 429:
                var wait = retryAfter ?? TimeSpan.FromSeconds(1);
                return new(UpstreamErrorKind.RateLimited, ApiError.RateLimited("Every deployment of this model is rate limited by its provider.", wait), detail, status, wait);
            case 408 or >= 500:
                return new(UpstreamErrorKind.ServerError, status == 504 ? ApiError.GatewayTimeout("The deployment timed out.") : ApiError.BadGateway("The deployment failed to answer."), detail, status, retryAfter);
            case 401 or 403 or 404:
                return Misconfigured(detail, status);
            case 413:
                return new(UpstreamErrorKind.ClientError, new ApiError(413, message, "invalid_request_error", "request_too_large"), detail, status);
        }

        // ValidationException and the rest: the request itself is at fault, in the provider's words.
        return new(UpstreamErrorKind.ClientError, new ApiError(status is >= 400 and < 500 ? status : 400, message, "invalid_request_error", null), detail, status);
    }

    private static UpstreamError Misconfigured(string detail, int status)
        => new(UpstreamErrorKind.Misconfigured, ApiError.BadGateway("The gateway is not configured correctly for this deployment.", "upstream_misconfigured"), detail, status);

    // Bedrock's own words, and those of the models it passes on (Claude's "prompt is too long").
    private static bool IsContextLength(string message)
        => message.Contains("too long", StringComparison.OrdinalIgnoreCase)
            || message.Contains("context window", StringComparison.OrdinalIgnoreCase)
            || message.Contains("context length", StringComparison.OrdinalIgnoreCase)
            || message.Contains("too many input tokens", StringComparison.OrdinalIgnoreCase)
            || message.Contains("exceeds the maximum", StringComparison.OrdinalIgnoreCase) && message.Contains("token", StringComparison.OrdinalIgnoreCase);

    // A model id that does not exist here, or one that needs an inference profile: the routing file is wrong.
    private static bool IsModelMisconfigured(string message)
        => message.Contains("model identifier is invalid", StringComparison.OrdinalIgnoreCase)
            || message.Contains("on-demand throughput", StringComparison.OrdinalIgnoreCase)
            || message.Contains("inference profile", StringComparison.OrdinalIgnoreCase) && message.Contains("Retry your request", StringComparison.OrdinalIgnoreCase);

    // "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/" or "com.amazon.coral#ThrottlingException".
    private static string? ExceptionName(string? raw)
    {
        if (string.IsNullOrWhiteSpace(raw))
        {
            return null;
        }

        var name = raw.AsSpan().Trim();
        var colon = name.IndexOf(':');
        if (colon >= 0)
        {
            name = name[..colon];
        }

        var hash = name.LastIndexOf('#');
        if (hash >= 0)
        {
            name = name[(hash + 1)..];
        }

        return name.Length > 0 ? name.ToString() : null;
    }

    private static string DefaultName(int status) => status switch
    {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        >= 500 => "InternalServerException",
        _ => "UnknownException",
    };

    private static (string? Type, string? Message) Parse(ReadOnlySpan<byte> body, Deployment deployment)
    {
        if (body.IsEmpty)
        {
            return (null, null);
        }

        try
        {
            var error = JsonSerializer.Deserialize(body, BedrockJsonContext.Default.BedrockErrorBody);
            var message = error?.Message ?? error?.UpperMessage;
            return (error?.Type, message is null ? null : SecretScrubber.Scrub(message, deployment));
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }
}
