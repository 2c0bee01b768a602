using System.Globalization;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Providers.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Anthropic;

/// <summary>
/// Reads Anthropic's errors (<c>{"type":"error","error":{"type","message"}}</c>) and rate-limit headers,
/// and its stop reasons.
/// </summary>
internal static class AnthropicErrors
{
    public static UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment, TimeProvider timeProvider)
    {
        var status = response.StatusCode;
        var (type, message) = Parse(body, deployment);
        message ??= $"The deployment answered with HTTP {status}.";
        var detail = string.Create(CultureInfo.InvariantCulture, $"HTTP {status} {type}: {SecretScrubber.Truncate(message, 200)}");
        var retryAfter = ReadRetryAfter(response, timeProvider);
        switch (status)
        {
            case 429:
                var wait = retryAfter ?? TimeSpan.FromSeconds(1);
                return new(UpstreamErrorKind.RateLimited, ApiError.RateLimited("Every deployment of this model is rate limited by its provider.", wait), detail, status, wait);
            case 408 or >= 500:
                // 529 overloaded_error included: Anthropic is busy, another deployment may not be.
                return new(UpstreamErrorKind.ServerError,
                    status == 504 ? ApiError.GatewayTimeout("The deployment timed out.") : ApiError.BadGateway("The deployment failed to answer."), detail, status, retryAfter);
            case 401 or 403 or 404:
                return new(UpstreamErrorKind.Misconfigured, ApiError.BadGateway("The gateway is not configured correctly for this deployment.", "upstream_misconfigured"), detail, status);
            case 413:
                return new(UpstreamErrorKind.ClientError, new ApiError(413, message, "invalid_request_error", "request_too_large"), detail, status);
        }

        if (message.Contains("prompt is too long", StringComparison.OrdinalIgnoreCase)
            || message.Contains("context window", StringComparison.OrdinalIgnoreCase)
            || message.Contains("exceed context limit", StringComparison.OrdinalIgnoreCase))
        {
            return new(UpstreamErrorKind.ContextLength, ApiError.BadRequest(message, "context_length_exceeded", "messages"), detail, status);
        }

        return new(UpstreamErrorKind.ClientError, new ApiError(status is >= 400 and < 500 ? status : 400, message, "invalid_request_error", type), detail, status);
    }

    /// <summary>An <c>error</c> event mid-stream (usually <c>overloaded_error</c>): the stream is broken.</summary>
    public static UpstreamError InBand(ReadOnlySpan<byte> json, Deployment deployment)
    {
        var (type, message) = Parse(json, deployment);
        var kind = type switch
        {
            "rate_limit_error" => UpstreamErrorKind.RateLimited,
            "invalid_request_error" => UpstreamErrorKind.ClientError,
            "authentication_error" or "permission_error" or "not_found_error" => UpstreamErrorKind.Misconfigured,
            _ => UpstreamErrorKind.ServerError,
        };
        var text = message ?? "The deployment reported an error mid-stream.";
        return new(kind, ApiError.BadGateway("The deployment reported an error: " + text), $"error event {type}: {SecretScrubber.Truncate(text, 200)}", 200);
    }

    public static FinishReason MapStopReason(string? reason, bool jsonTool) => reason switch
    {
        "end_turn" or "stop_sequence" or "pause_turn" => FinishReason.Stop,
        "max_tokens" or "model_context_window_exceeded" => FinishReason.Length,
        "tool_use" => jsonTool ? FinishReason.Stop : FinishReason.ToolCalls,
        "refusal" => FinishReason.ContentFilter,
        null => FinishReason.None,
        _ => FinishReason.Other,
    };

    private static (string? Type, string? Message) Parse(ReadOnlySpan<byte> body, Deployment deployment)
    {
        try
        {
            var error = JsonSerializer.Deserialize(body, AnthropicJsonContext.Default.AnthropicErrorBody)?.Error;
            return (error?.Type, error?.Message is { } message ? SecretScrubber.Scrub(message, deployment) : null);
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }

    /// <summary><c>retry-after</c> (seconds), else the latest <c>anthropic-ratelimit-*-reset</c> (an RFC 3339 time) on a 429.</summary>
    public static TimeSpan? ReadRetryAfter(UpstreamResponse response, TimeProvider timeProvider)
    {
        if (OpenAIErrors.ReadRetryAfterHeader(response, timeProvider) is { } wait)
        {
            return wait;
        }

        if (response.StatusCode != 429)
        {
            return null;
        }

        TimeSpan? latest = null;
        foreach (var name in (ReadOnlySpan<string>)["anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset"])
        {
            if (response.Header(name) is { } reset && DateTimeOffset.TryParse(reset, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            {
                var remaining = at - timeProvider.GetUtcNow();
                if (remaining > TimeSpan.Zero && (latest is null || remaining > latest))
                {
                    latest = remaining;
                }
            }
        }

        return latest;
    }
}
