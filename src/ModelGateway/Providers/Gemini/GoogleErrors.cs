using System.Globalization;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Providers.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Gemini;

/// <summary>
/// Reads Google's errors (<c>{"error":{"code","message","status","details"}}</c>), the same for the Gemini
/// API and Vertex AI, and Gemini's finish and block reasons.
/// </summary>
internal static class GoogleErrors
{
    public static UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment, TimeProvider timeProvider)
    {
        var status = response.StatusCode;
        var error = Parse(body);
        return Classify(status, error, deployment, OpenAIErrors.ReadRetryAfterHeader(response, timeProvider));
    }

    /// <summary>True when the body is Google's error shape (Claude on Vertex answers quota errors in it).</summary>
    public static bool IsGoogleError(ReadOnlySpan<byte> body) => Parse(body) is { Code: not null } or { Status: not null };

    /// <summary>An error object in a 200 body or a stream event: the status it names decides what it means.</summary>
    public static UpstreamError InBand(ReadOnlySpan<byte> json, Deployment deployment)
    {
        var error = Parse(json);
        var code = error?.Code ?? StatusCode(error?.Status);
        var classified = Classify(code, error, deployment, retryAfterHeader: null);

        // The answer had started (status 200): whatever went wrong, the stream is broken rather than refused.
        return classified.Kind is UpstreamErrorKind.ClientError or UpstreamErrorKind.ContextLength
            ? classified with { Status = 200 }
            : classified with { Error = ApiError.BadGateway("The deployment reported an error: " + (error?.Message is { } m ? Scrub(m, deployment) : "unknown")), Status = 200 };
    }

    private static UpstreamError Classify(int status, GoogleErrorDetail? error, Deployment deployment, TimeSpan? retryAfterHeader)
    {
        var google = error?.Status ?? string.Empty;
        var message = error?.Message is { } text ? Scrub(text, deployment) : $"The deployment answered with HTTP {status}.";
        var detail = string.Create(CultureInfo.InvariantCulture, $"HTTP {status} {google}: {SecretScrubber.Truncate(message, 200)}");
        var retryAfter = RetryDelay(error) ?? retryAfterHeader;
        if (status == 429 || google == "RESOURCE_EXHAUSTED")
        {
            var wait = retryAfter ?? TimeSpan.FromSeconds(1);
            return new(UpstreamErrorKind.RateLimited, ApiError.RateLimited("Every deployment of this model is rate limited by its provider.", wait), detail, status, wait);
        }

        if (status is 408 or >= 500 || google is "UNAVAILABLE" or "INTERNAL" or "DEADLINE_EXCEEDED" or "UNKNOWN")
        {
            return new(UpstreamErrorKind.ServerError,
                status == 504 || google == "DEADLINE_EXCEEDED" ? ApiError.GatewayTimeout("The deployment timed out.") : ApiError.BadGateway("The deployment failed to answer."), detail, status, retryAfter);
        }

        // A wrong key is a 400 INVALID_ARGUMENT on the Gemini API: it is the gateway's credential, not the client's request.
        if (status is 401 or 403 or 404 || google is "UNAUTHENTICATED" or "PERMISSION_DENIED" or "NOT_FOUND" || HasReason(error, "API_KEY_INVALID")
            || message.Contains("API key not valid", StringComparison.OrdinalIgnoreCase))
        {
            return new(UpstreamErrorKind.Misconfigured, ApiError.BadGateway("The gateway is not configured correctly for this deployment.", "upstream_misconfigured"), detail, status);
        }

        if (IsContextLength(message))
        {
            return new(UpstreamErrorKind.ContextLength, ApiError.BadRequest(message, "context_length_exceeded", "messages"), detail, status);
        }

        return new(UpstreamErrorKind.ClientError, new ApiError(status is >= 400 and < 500 ? status : 400, message, "invalid_request_error", google.Length > 0 ? google.ToLowerInvariant() : null), detail, status);
    }

    /// <summary>A prompt Google's safety system blocked before any answer: the same model refuses it again.</summary>
    public static UpstreamError PromptBlocked(string reason) => new(
        UpstreamErrorKind.ContentFilter,
        new ApiError(400, $"The prompt was blocked by the provider's content filter ({reason}).", "invalid_request_error", "content_filter", "messages"),
        "prompt blocked: " + reason,
        200);

    /// <summary>Gemini's <c>finishReason</c>; function calls end with <c>STOP</c>, which OpenAI clients know as <c>tool_calls</c>.</summary>
    public static FinishReason MapFinishReason(string? reason, bool sawToolCalls) => reason switch
    {
        "STOP" => sawToolCalls ? FinishReason.ToolCalls : FinishReason.Stop,
        "MAX_TOKENS" => FinishReason.Length,
        "SAFETY" or "RECITATION" or "BLOCKLIST" or "PROHIBITED_CONTENT" or "SPII" or "IMAGE_SAFETY" => FinishReason.ContentFilter,
        null or "" or "FINISH_REASON_UNSPECIFIED" => FinishReason.None,
        _ => FinishReason.Other,
    };

    // The "input token count exceeds the maximum" family; Vertex words it "exceeds the maximum number of tokens".
    private static bool IsContextLength(string message)
        => (message.Contains("token", StringComparison.OrdinalIgnoreCase) && message.Contains("exceeds the maximum", StringComparison.OrdinalIgnoreCase))
           || message.Contains("context window", StringComparison.OrdinalIgnoreCase)
           || message.Contains("input is too long", StringComparison.OrdinalIgnoreCase)
           || message.Contains("prompt is too long", StringComparison.OrdinalIgnoreCase);

    private static GoogleErrorDetail? Parse(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(body, GeminiJsonContext.Default.GoogleErrorBody)?.Error;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    // RetryInfo's retryDelay is a protobuf Duration in JSON: seconds with an "s" ("12s", "0.5s").
    private static TimeSpan? RetryDelay(GoogleErrorDetail? error)
    {
        foreach (var detail in error?.Details ?? [])
        {
            if (detail.ValueKind == JsonValueKind.Object
                && detail.TryGetProperty("@type", out var type) && type.ValueKind == JsonValueKind.String
                && type.GetString()!.EndsWith("google.rpc.RetryInfo", StringComparison.Ordinal)
                && detail.TryGetProperty("retryDelay", out var delay) && delay.ValueKind == JsonValueKind.String
                && delay.GetString() is [.. var seconds, 's']
                && double.TryParse(seconds, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= 0 && value < TimeSpan.MaxValue.TotalSeconds)
            {
                return TimeSpan.FromSeconds(value);
            }
        }

        return null;
    }

    private static bool HasReason(GoogleErrorDetail? error, string reason)
    {
        foreach (var detail in error?.Details ?? [])
        {
            if (detail.ValueKind == JsonValueKind.Object && detail.TryGetProperty("reason", out var value) && value.ValueKind == JsonValueKind.String && value.GetString() == reason)
            {
                return true;
            }
        }

        return false;
    }

    private static int StatusCode(string? status) => status switch
    {
        "INVALID_ARGUMENT" or "FAILED_PRECONDITION" or "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "RESOURCE_EXHAUSTED" => 429,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => 500,
    };

    private static string Scrub(string message, Deployment deployment) => SecretScrubber.Scrub(message, deployment);
}
