using System.Text.Json;
using Microsoft.AspNetCore.WebUtilities;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>Error bodies exactly as OpenAI, Azure OpenAI and an nginx in front of them write them.</summary>
internal static class ErrorBodies
{
    public const string AzureAccessDenied =
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.";

    public const string MalformedJson =
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)";

    public const string MissingApiKey =
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.";

    public const string MissingModel = "you must provide a model parameter";

    /// <summary><c>{"error":{"message":..,"type":..,"param":..,"code":..}}</c></summary>
    public static byte[] OpenAI(string message, string? type, string? param, string? code)
    {
        using var buffer = new PooledBufferWriter(512);
        using (var writer = new Utf8JsonWriter(buffer, JsonFormat.WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("error"u8);
            writer.WriteString("message"u8, message);
            WriteStringOrNull(writer, "type"u8, type);
            WriteStringOrNull(writer, "param"u8, param);
            WriteStringOrNull(writer, "code"u8, code);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Azure's own shape for gateway-level errors: <c>{"error":{"code":"404","message":..}}</c>.</summary>
    public static byte[] Azure(int status, string message)
    {
        using var buffer = new PooledBufferWriter(512);
        using (var writer = new Utf8JsonWriter(buffer, JsonFormat.WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("error"u8);
            writer.WriteString("code"u8, status.ToString(System.Globalization.CultureInfo.InvariantCulture));
            writer.WriteString("message"u8, message);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The error a behaviour asks for, with OpenAI's defaults filled in.</summary>
    public static byte[] ForBehavior(UpstreamBehavior behavior, string? model)
    {
        var status = behavior.StatusCode;
        var code = behavior.ErrorCode ?? status switch
        {
            401 => "invalid_api_key",
            404 => "model_not_found",
            429 => "rate_limit_exceeded",
            _ => null,
        };
        var type = behavior.ErrorType ?? status switch
        {
            429 => "requests",
            >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        var message = behavior.ErrorMessage ?? DefaultMessage(status, code, model);
        return OpenAI(message, type, behavior.ErrorParam, code);
    }

    public static string OpenAIInvalidKey(string key)
    {
        var masked = key.Length <= 8 ? new string('*', key.Length) : string.Concat(key.AsSpan(0, 3), new string('*', key.Length - 7), key.AsSpan(key.Length - 4));
        return $"Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys.";
    }

    /// <summary>The page nginx serves for an error status, with its CRLF line ends.</summary>
    public static byte[] NginxPage(int status)
    {
        var title = $"{status} {ReasonPhrases.GetReasonPhrase(status)}".TrimEnd();
        return System.Text.Encoding.ASCII.GetBytes(
            $"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n");
    }

    private static string DefaultMessage(int status, string? code, string? model) => code switch
    {
        "context_length_exceeded" =>
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.",
        "content_filter" =>
            "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        "invalid_api_key" => "Incorrect API key provided.",
        "model_not_found" => $"The model `{model}` does not exist or you do not have access to it.",
        _ => status switch
        {
            400 => "Invalid request.",
            403 => "You are not allowed to make this request.",
            408 => "Request timed out.",
            429 => "Rate limit reached for requests",
            500 => "The server had an error while processing your request. Sorry about that!",
            502 => "Bad gateway.",
            503 => "The engine is currently overloaded, please try again later",
            504 => "Gateway timeout.",
            >= 500 => "The server had an error while processing your request. Sorry about that!",
            _ => $"Request failed with status {status}.",
        },
    };

    private static void WriteStringOrNull(Utf8JsonWriter writer, ReadOnlySpan<byte> name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }
}
