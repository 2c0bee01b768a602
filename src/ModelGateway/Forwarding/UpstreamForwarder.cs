using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Http.Features;
using ModelGateway.Providers;
using Yarp.ReverseProxy.Forwarder;

namespace ModelGateway.Forwarding;

/// <summary>
/// Sends one attempt through YARP's <see cref="IHttpForwarder"/>. YARP builds the upstream request
/// (header copy, hop-by-hop stripping, version negotiation, trace propagation) and receives the
/// response headers; the transformer then takes the response over instead of letting YARP copy it,
/// so the gateway can still fail over, and so one SSE relay owns what the client sees.
/// Each attempt runs on its own lightweight <see cref="HttpContext"/>: concurrent hedged attempts
/// never touch the client's response, which stays untouched until an attempt wins.
/// </summary>
internal sealed class UpstreamForwarder(IHttpForwarder forwarder)
{
    private static readonly ForwarderRequestConfig RequestConfig = new()
    {
        // Our own timeouts (first token, idle, total) govern; YARP's activity timer must not cut first.
        ActivityTimeout = TimeSpan.FromHours(1),
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
    };

    public async ValueTask<UpstreamResponse> SendAsync(
        GatewayRequest request,
        HttpMessageInvoker invoker,
        string destinationPrefix,
        Uri destination,
        SplicedBody body,
        KeyValuePair<string, string>[] headers,
        IRequestSigner? signer,
        CancellationToken cancellationToken)
    {
        var attemptContext = CreateAttemptContext(request, body);
        var transformer = new AttemptTransformer(destination, headers, request.RequestId, body, signer);
        var error = await forwarder.SendAsync(attemptContext, destinationPrefix, invoker, RequestConfig, transformer, cancellationToken).ConfigureAwait(false);
        if (transformer.Response is { } response)
        {
            return response;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var exception = attemptContext.Features.Get<IForwarderErrorFeature>()?.Exception;
        if (error == ForwarderError.Request && IsUnprocessedRetryRefused(exception))
        {
            // The connection was closed under the request before the server processed it (an HTTP/2
            // GOAWAY, typically after a front's keepalive_requests). SocketsHttpHandler wanted to re-send
            // it on a new connection but YARP's request content can be read only once. The server never
            // saw it, so sending it again ourselves is safe, and it is not the deployment's fault.
            attemptContext = CreateAttemptContext(request, body);
            transformer = new AttemptTransformer(destination, headers, request.RequestId, body, signer);
            error = await forwarder.SendAsync(attemptContext, destinationPrefix, invoker, RequestConfig, transformer, cancellationToken).ConfigureAwait(false);
            if (transformer.Response is { } resent)
            {
                return resent;
            }

            cancellationToken.ThrowIfCancellationRequested();
            exception = attemptContext.Features.Get<IForwarderErrorFeature>()?.Exception;
        }

        var detail = Describe(exception) ?? error.ToString();
        return error switch
        {
            ForwarderError.RequestTimedOut => UpstreamResponse.Failed(TransportFailure.Timeout, detail),
            ForwarderError.Request when exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError }
                => UpstreamResponse.Failed(TransportFailure.Connect, detail),
            _ => UpstreamResponse.Failed(TransportFailure.Protocol, detail),
        };
    }

    /// <summary>
    /// True when the handler failed because it asked for the request body a second time: it does that
    /// only to retry a request the server refused unprocessed (GOAWAY, a connection closed before use).
    /// </summary>
    internal static bool IsUnprocessedRetryRefused(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is InvalidOperationException && current.Message.Contains("already consumed", StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static string? Describe(Exception? exception)
    {
        // The innermost message names the socket error ("Connection refused"); URLs and keys never appear in it.
        var current = exception;
        while (current?.InnerException is not null && current is not HttpRequestException { HttpRequestError: not HttpRequestError.Unknown })
        {
            current = current.InnerException;
        }

        return current?.Message;
    }

    // YARP reads the body and headers from the HttpContext it is given, so each attempt gets its own:
    // its own body stream (a failover re-sends the body) and nothing shared with a concurrent hedge.
    private static DefaultHttpContext CreateAttemptContext(GatewayRequest request, SplicedBody body)
    {
        var context = new DefaultHttpContext();
        var inbound = request.HttpContext.Request;
        var outbound = context.Request;
        outbound.Method = HttpMethods.Post;
        outbound.Scheme = inbound.Scheme;
        outbound.Path = inbound.Path;
        outbound.Protocol = "HTTP/1.1";
        context.Features.Get<IHttpRequestFeature>()!.Headers = ForwardedHeaders.From(inbound.Headers);
        outbound.ContentType = "application/json";
        outbound.ContentLength = body.Length;
        outbound.Body = body.OpenRead();
        return context;
    }

    /// <summary>Per-attempt transformer: sets the destination and credential (or signs), then takes the response over.</summary>
    private sealed class AttemptTransformer(Uri destination, KeyValuePair<string, string>[] headers, string requestId, SplicedBody body, IRequestSigner? signer)
        : HttpTransformer
    {
        public UpstreamResponse? Response { get; private set; }

        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
            proxyRequest.RequestUri = destination;
            proxyRequest.Headers.Host = null;
            proxyRequest.Headers.TryAddWithoutValidation("x-request-id", requestId);
            foreach (var header in headers)
            {
                // The provider's own value wins over one the client sent (anthropic-version, say).
                proxyRequest.Headers.Remove(header.Key);
                proxyRequest.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            if (signer is not null)
            {
                // Last, so the signature covers every header and the exact body that will be sent.
                await signer.SignAsync(proxyRequest, body, cancellationToken).ConfigureAwait(false);
            }
        }

        public override ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            if (proxyResponse is not null)
            {
                // Take the body before YARP disposes the message: returning false tells YARP to copy nothing.
                var content = proxyResponse.Content;
                proxyResponse.Content = null;
                Response = UpstreamResponse.FromHttp((int)proxyResponse.StatusCode, content.Headers.ContentType?.MediaType, proxyResponse.Headers, content);
            }

            return new ValueTask<bool>(false);
        }
    }
}

/// <summary>Chooses which of the client's request headers may travel upstream.</summary>
internal static class ForwardedHeaders
{
    // Credentials and identity of the client's own account must never reach a provider; content and
    // hop-by-hop headers are rebuilt by the gateway. The client's trace context (traceparent, tracestate,
    // baggage) passes through: when the gateway traces, the handler's propagator replaces it with the
    // attempt span's; when nobody traces, the provider still joins the client's trace.
    private static readonly HashSet<string> Blocked = new(StringComparer.OrdinalIgnoreCase)
    {
        "authorization", "proxy-authorization", "api-key", "x-api-key", "x-goog-api-key", "cookie", "set-cookie",
        "openai-organization", "openai-project", "anthropic-api-key",
        "host", "content-length", "content-type", "content-encoding", "transfer-encoding", "accept-encoding",
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect",
        "request-id", "x-request-id",
        "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip",
    };

    public static HeaderDictionary From(IHeaderDictionary inbound)
    {
        var forwarded = new HeaderDictionary(inbound.Count);
        foreach (var header in inbound)
        {
            if (!Blocked.Contains(header.Key) && !header.Key.StartsWith("x-modelgateway-", StringComparison.OrdinalIgnoreCase))
            {
                forwarded[header.Key] = header.Value;
            }
        }

        return forwarded;
    }

    public static bool IsBlocked(string name) => Blocked.Contains(name);
}

/// <summary>Pooled <see cref="SocketsHttpHandler"/>s shared by every provider with the same connect timeout.</summary>
internal sealed class UpstreamHttpClients : IDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<TimeSpan, HttpMessageInvoker> _invokers = [];

    public HttpMessageInvoker Get(TimeSpan connectTimeout)
    {
        lock (_gate)
        {
            if (!_invokers.TryGetValue(connectTimeout, out var invoker))
            {
                invoker = new HttpMessageInvoker(new SocketsHttpHandler
                {
                    UseProxy = false,
                    AllowAutoRedirect = false,
                    AutomaticDecompression = DecompressionMethods.None,
                    UseCookies = false,
                    EnableMultipleHttp2Connections = true,
                    ConnectTimeout = connectTimeout,
                    PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
                    PooledConnectionLifetime = TimeSpan.FromMinutes(10),
                    ActivityHeadersPropagator = new ReverseProxyPropagator(DistributedContextPropagator.Current),
                    MaxConnectionsPerServer = int.MaxValue,

                    // A stream the client abandoned is closed at once, so the provider stops generating (and billing).
                    ResponseDrainTimeout = TimeSpan.Zero,
                }, disposeHandler: true);
                _invokers[connectTimeout] = invoker;
            }

            return invoker;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var invoker in _invokers.Values)
            {
                invoker.Dispose();
            }

            _invokers.Clear();
        }
    }
}
