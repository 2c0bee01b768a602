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
/// An upstream's answer to one attempt: its status, the headers the gateway cares about, and a
/// body in OpenAI's shape. The body is owned here and released on dispose, which also tells the
/// upstream to stop if the body was not read to the end.
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
    public TimeSpan? RetryAfter { get; private init; }
    public string? UpstreamRequestId { get; private init; }

    public static UpstreamResponse Failed(TransportFailure failure, string detail) => new(null, null) { Failure = failure, FailureDetail = detail };

    public static UpstreamResponse FromHttp(int status, string? contentType, TimeSpan? retryAfter, string? requestId, HttpContent content) => new(content, null)
    {
        StatusCode = status,
        ContentType = contentType,
        IsEventStream = IsSse(contentType),
        RetryAfter = retryAfter,
        UpstreamRequestId = requestId,
    };

    /// <summary>A body produced in-process (simulated or translated); <paramref name="owner"/> is disposed with it.</summary>
    public static UpstreamResponse FromStream(int status, string contentType, Stream body, IAsyncDisposable? owner = null, TimeSpan? retryAfter = null)
        => new(null, body)
        {
            StatusCode = status,
            ContentType = contentType,
            IsEventStream = IsSse(contentType),
            RetryAfter = retryAfter,
            _owner = owner,
        };

    public async ValueTask<Stream> GetBodyAsync(CancellationToken cancellationToken)
        => _body ??= _content is null ? Stream.Null : await _content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);

    private static bool IsSse(string? contentType)
        => contentType is not null && contentType.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase);

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
