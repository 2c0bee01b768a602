using System.Globalization;
using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Anthropic;

/// <summary>Anthropic's error shape, <c>{"type":"error","error":{"type":..,"message":..},"request_id":..}</c>, with its statuses and types.</summary>
internal static class AnthropicErrors
{
    public const string ContextLengthMessage = "prompt is too long: 210000 tokens > 200000 maximum";

    public const string RateLimitMessage =
        "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.";

    public static WireError Create(int status, string type, string message, string requestId) =>
        new(status, Body(type, message, requestId));

    public static byte[] Body(string type, string message, string? requestId) =>
        JsonBytes.Write((type, message, requestId), static (writer, state) =>
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "error"u8);
            WriteError(writer, state.type, state.message);
            if (state.requestId is not null)
            {
                writer.WriteString("request_id"u8, state.requestId);
            }

            writer.WriteEndObject();
        });

    /// <summary>The error a behaviour asks for, with Anthropic's defaults and, on a 429, its rate-limit headers.</summary>
    public static WireError ForBehavior(UpstreamBehavior behavior, string model, string requestId, DateTimeOffset now)
    {
        var status = behavior.StatusCode;
        var contextLength = status is >= 400 and < 500 && behavior.ErrorCode == "context_length_exceeded";
        var type = behavior.ErrorType ?? (contextLength ? "invalid_request_error" : DefaultType(status));
        var message = behavior.ErrorMessage ?? (contextLength ? ContextLengthMessage : DefaultMessage(status, model));
        Dictionary<string, string>? headers = null;
        if (status == 429)
        {
            var wait = behavior.RetryAfter ?? TimeSpan.FromSeconds(1);
            var reset = (now + wait).ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
            {
                ["retry-after"] = Math.Max(0, (long)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture),
                ["anthropic-ratelimit-requests-limit"] = "50",
                ["anthropic-ratelimit-requests-remaining"] = "0",
                ["anthropic-ratelimit-requests-reset"] = reset,
                ["anthropic-ratelimit-input-tokens-limit"] = "30000",
                ["anthropic-ratelimit-input-tokens-remaining"] = "0",
                ["anthropic-ratelimit-input-tokens-reset"] = reset,
                ["anthropic-ratelimit-output-tokens-limit"] = "8000",
                ["anthropic-ratelimit-output-tokens-remaining"] = "8000",
                ["anthropic-ratelimit-output-tokens-reset"] = reset,
                ["anthropic-ratelimit-tokens-limit"] = "38000",
                ["anthropic-ratelimit-tokens-remaining"] = "0",
                ["anthropic-ratelimit-tokens-reset"] = reset,
            };
        }

        return new WireError(status, Body(type, message, requestId), Headers: headers);
    }

    /// <summary>The <c>event: error</c> sent mid-stream.</summary>
    public static byte[] StreamEvent(UpstreamBehavior behavior)
    {
        var json = JsonBytes.Write(behavior, static (writer, behavior) =>
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "error"u8);
            WriteError(writer, behavior.ErrorType ?? "overloaded_error", behavior.ErrorMessage ?? "Overloaded");
            writer.WriteEndObject();
        });
        return Sse.Event("error", json);
    }

    public static string DefaultType(int status) => status switch
    {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        >= 500 => "api_error",
        _ => "invalid_request_error",
    };

    private static string DefaultMessage(int status, string model) => status switch
    {
        401 => "invalid x-api-key",
        403 => "Your API key does not have permission to use the specified resource.",
        404 => "model: " + model,
        413 => "Request exceeds the maximum allowed number of bytes.",
        429 => RateLimitMessage,
        529 => "Overloaded",
        >= 500 => "Internal server error",
        _ => "Invalid request.",
    };

    private static void WriteError(Utf8JsonWriter writer, string type, string message)
    {
        writer.WriteStartObject("error"u8);
        writer.WriteString("type"u8, type);
        writer.WriteString("message"u8, message);
        writer.WriteEndObject();
    }
}
