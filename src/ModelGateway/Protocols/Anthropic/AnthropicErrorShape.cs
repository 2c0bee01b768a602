using System.Buffers;
using System.Text.Json;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Anthropic;

/// <summary>
/// Anthropic's error shape, <c>{"type":"error","error":{"type","message"},"request_id"}</c>, and its
/// statuses. The gateway's errors are neutral (<see cref="ApiError"/>, OpenAI-flavoured); this maps each to
/// the status and error type an Anthropic SDK (and Claude Code) acts on: a 503 "no healthy deployment"
/// becomes a 529 <c>overloaded_error</c>, a 502 "no deployment answered" a 500 <c>api_error</c>.
/// </summary>
internal static class AnthropicErrorShape
{
    /// <summary>The status and <c>error.type</c> an Anthropic client sees for a gateway error.</summary>
    public static (int Status, string Type) Map(ApiError error) => error.Status switch
    {
        400 => (400, "invalid_request_error"),
        401 => (401, "authentication_error"),
        402 => (402, "billing_error"),
        403 => (403, "permission_error"),
        404 => (404, "not_found_error"),
        413 => (413, "request_too_large"),
        429 => (429, "rate_limit_error"),
        503 or 529 => (529, "overloaded_error"),
        504 => (504, "timeout_error"),
        >= 500 => (500, "api_error"),
        var status => (status, "invalid_request_error"),
    };

    public static Task WriteAsync(HttpContext context, ApiError error)
    {
        context.Response.Headers["request-id"] = context.TraceIdentifier;
        return error.WriteAsync(context, Map(error).Status, (e, output) => WriteJson(e, context.TraceIdentifier, output));
    }

    /// <summary>Writes <c>{"type":"error","error":{"type","message"},"request_id"}</c>.</summary>
    public static void WriteJson(ApiError error, string? requestId, IBufferWriter<byte> output)
    {
        using var json = new Utf8JsonWriter(output, JsonOutput.Options);
        json.WriteStartObject();
        json.WriteString("type"u8, "error"u8);
        json.WriteStartObject("error"u8);
        json.WriteString("type"u8, Map(error).Type);
        json.WriteString("message"u8, error.Message);
        json.WriteEndObject();
        if (requestId is not null)
        {
            json.WriteString("request_id"u8, requestId);
        }

        json.WriteEndObject();
    }

    /// <summary>The in-band <c>event: error</c> that tells a client its stream broke.</summary>
    public static void WriteEvent(ApiError error, string? requestId, IBufferWriter<byte> output)
    {
        output.Write("event: error\ndata: "u8);
        WriteJson(error, requestId, output);
        output.Write("\n\n"u8);
    }
}
