using System.Globalization;
using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Gemini;

/// <summary>Google's error shape, <c>{"error":{"code":..,"message":..,"status":..,"details":[..]}}</c>, shared by Gemini and Vertex AI.</summary>
internal static class GoogleErrors
{
    public const string ContentType = "application/json; charset=UTF-8";

    public const string Unauthenticated =
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

    public const string ContextLengthMessage = "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).";

    public static WireError Create(int status, string message, string? googleStatus = null, Action<Utf8JsonWriter>? details = null) =>
        new(status, Body(status, message, googleStatus ?? DefaultStatus(status), details), ContentType);

    /// <summary>The error a behaviour asks for; a 429 carries a <c>RetryInfo</c> detail.</summary>
    public static WireError ForBehavior(UpstreamBehavior behavior, string model, bool vertex)
    {
        var status = behavior.StatusCode;
        var contextLength = status is >= 400 and < 500 && behavior.ErrorCode == "context_length_exceeded";
        var googleStatus = behavior.ErrorType ?? (contextLength ? "INVALID_ARGUMENT" : DefaultStatus(status));
        var message = behavior.ErrorMessage ?? (contextLength ? ContextLengthMessage : DefaultMessage(status, model, vertex));
        Action<Utf8JsonWriter>? details = null;
        if (status == 429)
        {
            var delay = RetryDelay(behavior.RetryAfter ?? TimeSpan.FromSeconds(1));
            details = writer =>
            {
                writer.WriteStartObject();
                writer.WriteString("@type"u8, "type.googleapis.com/google.rpc.QuotaFailure"u8);
                writer.WriteStartArray("violations"u8);
                writer.WriteStartObject();
                writer.WriteString("quotaMetric"u8, "generativelanguage.googleapis.com/generate_content_free_tier_requests"u8);
                writer.WriteString("quotaId"u8, "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"u8);
                writer.WriteEndObject();
                writer.WriteEndArray();
                writer.WriteEndObject();
                writer.WriteStartObject();
                writer.WriteString("@type"u8, "type.googleapis.com/google.rpc.RetryInfo"u8);
                writer.WriteString("retryDelay"u8, delay);
                writer.WriteEndObject();
            };
        }

        return new WireError(status, Body(status, message, googleStatus, details), ContentType);
    }

    /// <summary>The error object a stream carries in a <c>data:</c> event when it fails after it started.</summary>
    public static byte[] StreamEvent(UpstreamBehavior behavior)
    {
        var status = behavior.ErrorType ?? "UNAVAILABLE";
        var code = status switch
        {
            "RESOURCE_EXHAUSTED" => 429,
            "INTERNAL" => 500,
            "DEADLINE_EXCEEDED" => 504,
            "INVALID_ARGUMENT" => 400,
            _ => 503,
        };
        return Sse.Data(Body(code, behavior.ErrorMessage ?? DefaultMessage(code, string.Empty, vertex: false), status, null), crlf: true);
    }

    /// <summary>Google's duration format: whole seconds with an <c>s</c>, fractions only when there are some.</summary>
    public static string RetryDelay(TimeSpan delay) =>
        delay.Ticks % TimeSpan.TicksPerSecond == 0
            ? ((long)delay.TotalSeconds).ToString(CultureInfo.InvariantCulture) + "s"
            : delay.TotalSeconds.ToString("0.######", CultureInfo.InvariantCulture) + "s";

    public static string DefaultStatus(int status) => status switch
    {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    };

    private static string DefaultMessage(int status, string model, bool vertex) => status switch
    {
        400 => "Request contains an invalid argument.",
        401 => Unauthenticated,
        403 => "The caller does not have permission",
        404 => vertex
            ? $"Publisher Model `{model}` was not found or your project does not have access to it. Please ensure you are using a valid model version."
            : $"models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.",
        429 => vertex
            ? "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
            : "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        503 => "The model is overloaded. Please try again later.",
        504 => "The request timed out. Please try again.",
        >= 500 => "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        _ => $"Request failed with status {status}.",
    };

    private static byte[] Body(int code, string message, string status, Action<Utf8JsonWriter>? details) =>
        JsonBytes.Write((code, message, status, details), static (writer, state) =>
        {
            writer.WriteStartObject();
            writer.WriteStartObject("error"u8);
            writer.WriteNumber("code"u8, state.code);
            writer.WriteString("message"u8, state.message);
            writer.WriteString("status"u8, state.status);
            if (state.details is not null)
            {
                writer.WriteStartArray("details"u8);
                state.details(writer);
                writer.WriteEndArray();
            }

            writer.WriteEndObject();
            writer.WriteEndObject();
        });
}
