using System.Globalization;
using System.Net;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Wire;

namespace ModelGateway.Providers.OpenAI;

/// <summary>
/// Reads OpenAI's (and Azure's, and every OpenAI-compatible server's) errors: the body
/// <c>{"error":{"message","type","param","code"}}</c> and the rate-limit headers.
/// </summary>
internal static class OpenAIErrors
{
    public static UpstreamError Classify(UpstreamResponse response, ReadOnlySpan<byte> body, Deployment deployment, TimeProvider timeProvider)
    {
        var status = response.StatusCode;
        var parsed = Parse(body, status, deployment);
        var detail = string.Create(CultureInfo.InvariantCulture, $"HTTP {status}: {SecretScrubber.Truncate(parsed.Message, 200)}");
        var retryAfter = ReadRetryAfter(response, timeProvider);
        switch (status)
        {
            case 429:
                var wait = retryAfter ?? (parsed.Code == "insufficient_quota" ? TimeSpan.FromMinutes(5) : TimeSpan.FromSeconds(1));
                return new(UpstreamErrorKind.RateLimited, ApiError.RateLimited("Every deployment of this model is rate limited by its provider.", wait), detail, status, wait);
            case 408 or >= 500:
                return new(UpstreamErrorKind.ServerError,
                    status == 504 ? ApiError.GatewayTimeout("The deployment timed out.") : ApiError.BadGateway("The deployment failed to answer."), detail, status, retryAfter);
            case 401 or 403 or 404:
                // The gateway's own credential or deployment name is wrong: not the client's fault, so not a 401 for them.
                return new(UpstreamErrorKind.Misconfigured, ApiError.BadGateway("The gateway is not configured correctly for this deployment.", "upstream_misconfigured"), detail, status);
        }

        if (IsContextLength(parsed))
        {
            return new(UpstreamErrorKind.ContextLength, parsed with { Status = 400, Code = "context_length_exceeded" }, detail, status);
        }

        if (IsContentFilter(parsed))
        {
            return new(UpstreamErrorKind.ContentFilter, parsed with { Status = 400, Code = "content_filter" }, detail, status);
        }

        return new(UpstreamErrorKind.ClientError, parsed, detail, status);
    }

    /// <summary>An error object inside a 200 body or a stream chunk: the provider failed mid-way.</summary>
    public static UpstreamError InBand(ReadOnlySpan<byte> json, Deployment deployment)
    {
        var parsed = Parse(json, 502, deployment);
        return new(UpstreamErrorKind.ServerError, parsed with { Status = 502 }, "error object in a 2xx answer: " + SecretScrubber.Truncate(parsed.Message, 200), 200);
    }

    private static bool IsContextLength(ApiError error)
        => error.Code is "context_length_exceeded" or "string_above_max_length"
           || error.Message.Contains("maximum context length", StringComparison.OrdinalIgnoreCase)
           || error.Message.Contains("context window", StringComparison.OrdinalIgnoreCase);

    private static bool IsContentFilter(ApiError error)
        => error.Code is "content_filter" or "content_policy_violation" or "ResponsibleAIPolicyViolation"
           || error.Message.Contains("content management policy", StringComparison.OrdinalIgnoreCase);

    /// <summary>Reads an OpenAI or Azure error body into our shape, scrubbing anything that looks like a key.</summary>
    public static ApiError Parse(ReadOnlySpan<byte> body, int status, Deployment deployment)
    {
        string? message = null;
        string? type = null;
        string? code = null;
        string? param = null;
        try
        {
            var reader = new Utf8JsonReader(body);
            if (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (!reader.ValueTextEquals("error"u8))
                    {
                        reader.Read();
                        reader.Skip();
                        continue;
                    }

                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        message = reader.GetString();
                        continue;
                    }

                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        reader.Skip();
                        continue;
                    }

                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var name = reader.GetString();
                        reader.Read();
                        var value = reader.TokenType switch
                        {
                            JsonTokenType.String => reader.GetString(),
                            JsonTokenType.Number => reader.GetInt64().ToString(CultureInfo.InvariantCulture),
                            _ => null,
                        };
                        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                        {
                            reader.Skip();
                        }

                        switch (name)
                        {
                            case "message": message = value; break;
                            case "type": type = value; break;
                            case "code": code = value; break;
                            case "param": param = value; break;
                        }
                    }
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            message = null;
        }

        message = message is null ? $"The deployment answered with HTTP {status}." : SecretScrubber.Scrub(message, deployment);
        type ??= status switch
        {
            429 => "requests",
            >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        return new ApiError(status, message, type, code, param);
    }

    /// <summary><c>retry-after-ms</c> (OpenAI, Azure) wins over <c>retry-after</c> (seconds or a date), then the rate-limit reset hints.</summary>
    public static TimeSpan? ReadRetryAfter(UpstreamResponse response, TimeProvider timeProvider)
    {
        if (response.Header("retry-after-ms") is { } ms && double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out var milliseconds) && milliseconds >= 0)
        {
            return TimeSpan.FromMilliseconds(milliseconds);
        }

        if (ReadRetryAfterHeader(response, timeProvider) is { } wait)
        {
            return wait;
        }

        if (response.StatusCode == (int)HttpStatusCode.TooManyRequests)
        {
            TimeSpan? best = null;
            if (Durations.TryParse(response.Header("x-ratelimit-reset-requests"), out var r))
            {
                best = r;
            }

            if (Durations.TryParse(response.Header("x-ratelimit-reset-tokens"), out var t) && (best is null || t > best))
            {
                best = t;
            }

            return best;
        }

        return null;
    }

    /// <summary>The standard <c>retry-after</c> header: seconds or an HTTP date.</summary>
    public static TimeSpan? ReadRetryAfterHeader(UpstreamResponse response, TimeProvider timeProvider)
    {
        if (response.Header("retry-after") is not { } retryAfter)
        {
            return null;
        }

        if (double.TryParse(retryAfter, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0)
        {
            return TimeSpan.FromSeconds(seconds);
        }

        if (DateTimeOffset.TryParse(retryAfter, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var date))
        {
            var wait = date - timeProvider.GetUtcNow();
            return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
        }

        return null;
    }
}
