using System.Net.Http.Headers;
using ModelGateway.Configuration;
using ModelGateway.Providers;
using ModelGateway.Wire;

namespace ModelGateway.Forwarding;

/// <summary>
/// Forwards one request the gateway does not interpret (an uploaded file, an audio transcription, a
/// stored response) to one deployment as it is: method, path, query, content type and body untouched,
/// multipart included; the provider's credential replaces the client's. The answer streams back as it
/// came, except that a JSON answer small enough is kept, so its usage can be read.
/// </summary>
internal sealed partial class RawForwarder(ILogger<RawForwarder> logger)
{
    /// <summary>JSON answers up to this size are kept for their usage; larger ones (file contents, batch results) just stream.</summary>
    public const int MaxInspectedBytes = 1024 * 1024;

    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "trailer", "te", "set-cookie",
    };

    /// <summary>Sends the request and writes the answer; returns the answer's JSON body when it was kept, else empty.</summary>
    public async Task<ReadOnlyMemory<byte>> ForwardAsync(HttpContext context, Deployment deployment, IRawForwardingAdapter adapter, HttpMethod method, string path, ReadOnlyMemory<byte>? bufferedBody, bool inspect = false)
    {
        var inbound = context.Request;
        using var message = new HttpRequestMessage(method, new Uri(path + inbound.QueryString.Value, UriKind.Relative));
        if (method != HttpMethod.Get && method != HttpMethod.Delete)
        {
            HttpContent content = bufferedBody is { } buffered ? new ReadOnlyMemoryContent(buffered) : new StreamContent(inbound.Body);
            if (inbound.ContentType is { } contentType)
            {
                // Multipart keeps its boundary: the header is copied as the client wrote it.
                content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }

            if (bufferedBody is null && inbound.ContentLength is { } length)
            {
                content.Headers.ContentLength = length;
            }

            message.Content = content;
        }

        foreach (var header in inbound.Headers)
        {
            if (!ForwardedHeaders.IsBlocked(header.Key) && !header.Key.StartsWith("x-modelgateway-", StringComparison.OrdinalIgnoreCase) && !header.Key.StartsWith(':'))
            {
                message.Headers.TryAddWithoutValidation(header.Key, (IEnumerable<string?>)header.Value);
            }
        }

        message.Headers.TryAddWithoutValidation("x-request-id", context.TraceIdentifier);
        HttpResponseMessage response;
        try
        {
            response = await adapter.ForwardAsync(message, context.RequestAborted).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            LogForwardFailed(logger, context.TraceIdentifier, deployment.Name, ex.Message);
            await ApiError.BadGateway("The deployment could not be reached.").WriteAsync(context).ConfigureAwait(false);
            return default;
        }

        using (response)
        {
            var outbound = context.Response;
            outbound.StatusCode = (int)response.StatusCode;
            Copy(response.Headers, outbound);
            Copy(response.Content.Headers, outbound);
            context.Response.Headers["x-modelgateway-deployment"] = deployment.Name;
            context.Response.Headers["x-modelgateway-provider"] = deployment.Provider.Name;
            var json = response.Content.Headers.ContentType?.MediaType?.EndsWith("json", StringComparison.OrdinalIgnoreCase) == true;
            await using var stream = await response.Content.ReadAsStreamAsync(context.RequestAborted).ConfigureAwait(false);
            if (!inspect || !json || response.Content.Headers.ContentLength > MaxInspectedBytes)
            {
                await stream.CopyToAsync(outbound.Body, context.RequestAborted).ConfigureAwait(false);
                return default;
            }

            // Read at most one byte past the limit: a body that fits is kept, a larger one goes on streaming.
            var kept = new byte[MaxInspectedBytes + 1];
            var length = 0;
            int read;
            while (length < kept.Length && (read = await stream.ReadAsync(kept.AsMemory(length), context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                length += read;
            }

            await outbound.Body.WriteAsync(kept.AsMemory(0, length), context.RequestAborted).ConfigureAwait(false);
            if (length <= MaxInspectedBytes)
            {
                return kept.AsMemory(0, length);
            }

            await stream.CopyToAsync(outbound.Body, context.RequestAborted).ConfigureAwait(false);
            return default;
        }
    }

    private static void Copy(HttpHeaders headers, HttpResponse outbound)
    {
        foreach (var (name, values) in headers)
        {
            if (!HopByHop.Contains(name))
            {
                outbound.Headers[name] = values.ToArray();
            }
        }
    }

    [LoggerMessage(EventId = 2401, Level = LogLevel.Warning, Message = "Request {RequestId}: forwarding to {Deployment} failed: {Reason}")]
    private static partial void LogForwardFailed(ILogger logger, string requestId, string deployment, string reason);
}
