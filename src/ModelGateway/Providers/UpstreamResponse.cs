using System.Net.Http.Headers;

namespace ModelGateway.Providers;

/// <summary>Why an attempt got no HTTP response at all.</summary>
internal enum TransportFailure
{
    None,
    Connect,
    Timeout,
    Protocol,
}

/// <summary>
/// An upstream's answer to one attempt: its status, headers and body, in the provider's own wire.
/// The body is owned here and released on dispose, which also tells the upstream to stop if the body
/// was not read to the end.
/// </summary>
internal sealed class UpstreamResponse : IAsyncDisposable
{
    private readonly HttpContent? _content;
    private Stream? _body;
    private IAsyncDisposable? _owner;

    private UpstreamResponse(HttpContent? content, Stream? body)
    {
        _content = content;
        _body = body;
    }

    public TransportFailure Failure { get; private init; }
    public string? FailureDetail { get; private init; }
    public int StatusCode { get; private init; }
    public bool IsEventStream { get; private init; }
    public string? ContentType { get; private init; }

    /// <summary>The response headers (rate-limit hints, request ids); null for in-process answers without any.</summary>
    public HttpResponseHeaders? Headers { get; private init; }

    public static UpstreamResponse Failed(TransportFailure failure, string detail) => new(null, null) { Failure = failure, FailureDetail = detail };

    /// <summary>
    /// The adapter refused the attempt before sending anything (a client URL it will not fetch, a credential
    /// it could not obtain); <paramref name="error"/> says what that means, as a classified upstream error would.
    /// </summary>
    public static UpstreamResponse Refused(Canonical.UpstreamError error) => new(null, null) { Refusal = error, FailureDetail = error.Detail };

    /// <summary>Set when the adapter refused the attempt before sending it.</summary>
    public Canonical.UpstreamError? Refusal { get; private init; }

    public static UpstreamResponse FromHttp(int status, string? contentType, HttpResponseHeaders headers, HttpContent content) => new(content, null)
    {
        StatusCode = status,
        ContentType = contentType,
        IsEventStream = IsStreamType(contentType),
        Headers = headers,
    };

    /// <summary>A body produced in-process (simulated); <paramref name="owner"/> is disposed with it.</summary>
    public static UpstreamResponse FromStream(int status, string contentType, Stream body, IAsyncDisposable? owner = null, HttpResponseHeaders? headers = null)
        => new(null, body)
        {
            StatusCode = status,
            ContentType = contentType,
            IsEventStream = IsStreamType(contentType),
            Headers = headers,
            _owner = owner,
        };

    /// <summary>The provider's id for this request, from whichever header its wire uses.</summary>
    public string? RequestId => Header("x-request-id") ?? Header("request-id") ?? Header("apim-request-id") ?? Header("x-amzn-requestid");

    /// <summary>The first value of a response header, or null.</summary>
    public string? Header(string name)
        => Headers is not null && Headers.NonValidated.TryGetValues(name, out var values) && values.Count > 0 ? values.ToString() : null;

    public async ValueTask<Stream> GetBodyAsync(CancellationToken cancellationToken)
        => _body ??= _content is null ? Stream.Null : await _content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);

    // SSE for most providers, AWS's binary event stream for Bedrock.
    private static bool IsStreamType(string? contentType)
        => contentType is not null && (contentType.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase)
            || contentType.StartsWith("application/vnd.amazon.eventstream", StringComparison.OrdinalIgnoreCase));

    public async ValueTask DisposeAsync()
    {
        if (_body is not null)
        {
            await _body.DisposeAsync().ConfigureAwait(false);
        }

        _content?.Dispose();
        if (_owner is not null)
        {
            await _owner.DisposeAsync().ConfigureAwait(false);
        }
    }
}
