using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Bedrock;

/// <summary>
/// AWS's JSON-protocol errors as Bedrock Runtime sends them: the status, <c>x-amzn-ErrorType</c> naming the exception,
/// <c>x-amzn-RequestId</c>, and <c>{"message":..}</c>. In a stream, the same exceptions travel as exception messages.
/// </summary>
internal static class BedrockErrors
{
    public const string ContextLengthMessage = "Input is too long for requested model.";

    public static WireError Create(int status, string exceptionType, string message, string requestId) =>
        new(
            status,
            Body(message),
            Headers: new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
            {
                ["x-amzn-ErrorType"] = exceptionType + ":http://internal.amazon.com/coral/com.amazon.bedrock/",
                ["x-amzn-RequestId"] = requestId,
            });

    public static WireError ForBehavior(UpstreamBehavior behavior, string requestId)
    {
        var status = behavior.StatusCode;
        var contextLength = status is >= 400 and < 500 && behavior.ErrorCode == "context_length_exceeded";
        var type = behavior.ErrorType ?? (contextLength ? "ValidationException" : DefaultType(status));
        var message = behavior.ErrorMessage ?? (contextLength ? ContextLengthMessage : DefaultMessage(type));
        return Create(status, type, message, requestId);
    }

    /// <summary>The exception message a broken stream ends with; <c>ErrorType</c> names it in the stream's camel case.</summary>
    public static byte[] StreamException(UpstreamBehavior behavior)
    {
        var type = behavior.ErrorType ?? "throttlingException";
        var streamType = char.ToLowerInvariant(type[0]) + type[1..];
        var modelled = char.ToUpperInvariant(type[0]) + type[1..];
        return EventStream.Exception(streamType, Body(behavior.ErrorMessage ?? DefaultMessage(modelled)));
    }

    public static string DefaultType(int status) => status switch
    {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        >= 500 => "InternalServerException",
        _ => "ValidationException",
    };

    private static string DefaultMessage(string type) => type switch
    {
        "AccessDeniedException" => "You don't have access to the model with the specified model ID.",
        "ResourceNotFoundException" => "Could not resolve the foundation model from the provided model identifier.",
        "ModelTimeoutException" => "Model has timed out in processing the request. Try your request again.",
        "ModelErrorException" => "The system encountered an unexpected error during processing. Try your request again.",
        "ModelNotReadyException" => "The model is not ready to serve inference requests. Try your request again.",
        "ModelStreamErrorException" => "The model stream encountered an error. Try your request again.",
        "ThrottlingException" => "Too many requests, please wait before trying again.",
        "ServiceUnavailableException" => "Bedrock is unable to process your request.",
        "InternalServerException" => "The server encountered an internal error while processing the request.",
        _ => "The provided request is not valid",
    };

    private static byte[] Body(string message) => JsonBytes.Write(message, static (writer, message) =>
    {
        writer.WriteStartObject();
        writer.WriteString("message"u8, message);
        writer.WriteEndObject();
    });
}
