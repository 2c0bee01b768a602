using System.Buffers;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Providers;
using ModelGateway.Wire;

namespace ModelGateway.Resilience;

/// <summary>How an attempt failed; decides whether the next candidate is tried and whether the circuit counts it.</summary>
internal enum AttemptFailure
{
    None,

    /// <summary>No HTTP response: refused, reset, DNS, TLS.</summary>
    Transport,

    /// <summary>No first byte within the time allowed.</summary>
    Timeout,

    /// <summary>408, 5xx, or an error event before the first chunk.</summary>
    ServerError,

    /// <summary>429: the deployment is cooled down for as long as it asked.</summary>
    RateLimited,

    /// <summary>Garbage where OpenAI's format was expected: HTML, truncated JSON, a broken event.</summary>
    BadResponse,

    /// <summary>The gateway's own credential or configuration was refused (401, 403, 404 upstream).</summary>
    Misconfigured,

    /// <summary>The prompt does not fit this deployment; only a larger one may help.</summary>
    ContextLength,

    /// <summary>A content policy refused the request; the same model will refuse it again.</summary>
    ContentFilter,

    /// <summary>Any other 4xx: the request itself is at fault and goes back to the client.</summary>
    ClientError,

    /// <summary>No candidate was left to try.</summary>
    Unavailable,
}

/// <summary>
/// The result of one attempt. On success it owns the open upstream answer until the relay has sent it
/// on: a pass-through stream whose first event is already read, or a whole pass-through body; or,
/// translated, a decoder positioned on its first content event, or a whole canonical answer.
/// </summary>
internal sealed class AttemptOutcome : IAsyncDisposable
{
    private byte[]? _body;
    private bool _holdsSlot;
    private int _disposed;

    private AttemptOutcome()
    {
    }

    public Deployment? Deployment { get; private init; }
    public AttemptFailure Failure { get; private init; }
    public int UpstreamStatus { get; private init; }
    public ApiError? Error { get; private init; }
    public TimeSpan? RetryAfter { get; private init; }
    public string? Detail { get; private init; }

    public UpstreamResponse? Response { get; private init; }

    /// <summary>Pass-through streams: the reader, positioned on the first event.</summary>
    public SseReader? Events { get; private init; }

    /// <summary>Translated streams: the decoder; <see cref="FirstEvents"/> holds what it has decoded so far.</summary>
    public IStreamDecoder? Decoder { get; private init; }

    /// <summary>Translated streams: the events decoded before and including the first content event, in order.</summary>
    public StreamEvent[] FirstEvents { get; private init; } = [];

    /// <summary>Translated non-streamed answers.</summary>
    public ChatResponse? Answer { get; private init; }

    /// <summary>Translated embeddings answers.</summary>
    public EmbeddingResponse? Embeddings { get; private init; }

    public bool IsStream => Events is not null || Decoder is not null;

    /// <summary>The answer was translated from another wire (decoded stream or canonical answer), not passed through.</summary>
    public bool IsTranslated => Decoder is not null || Answer is not null;

    /// <summary>What the first event (streams) or the whole body (non-streams) said.</summary>
    public ResponseFacts Facts;

    public ReadOnlyMemory<byte> Body => _body.AsMemory(0, BodyLength);
    public int BodyLength { get; private init; }

    /// <summary>When the attempt started and when its first byte arrived (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long StartedAt { get; private init; }
    public long FirstByteAt { get; private init; }

    public bool IsSuccess => Failure == AttemptFailure.None;

    /// <summary>The attempt's span, kept open until the answer has been relayed.</summary>
    public System.Diagnostics.Activity? Activity { get; set; }

    /// <summary>Failures another candidate (or a later retry) might not have.</summary>
    public bool IsRetriable => Failure is AttemptFailure.Transport or AttemptFailure.Timeout or AttemptFailure.ServerError
        or AttemptFailure.RateLimited or AttemptFailure.BadResponse or AttemptFailure.Misconfigured or AttemptFailure.ContextLength;

    /// <summary>Failures that say the deployment is unhealthy, for its circuit breaker.</summary>
    public bool CountsAgainstHealth => Failure is AttemptFailure.Transport or AttemptFailure.Timeout or AttemptFailure.ServerError
        or AttemptFailure.BadResponse or AttemptFailure.Misconfigured;

    /// <summary>Transient failures that justify trying the same deployment again after a backoff.</summary>
    public bool IsTransient => Failure is AttemptFailure.Transport or AttemptFailure.Timeout or AttemptFailure.ServerError or AttemptFailure.BadResponse;

    public static AttemptOutcome Streamed(Deployment deployment, UpstreamResponse response, SseReader events, in ResponseFacts facts, long startedAt, long firstByteAt)
        => new() { Deployment = deployment, Response = response, Events = events, Facts = facts, StartedAt = startedAt, FirstByteAt = firstByteAt, _holdsSlot = true };

    public static AttemptOutcome Decoded(Deployment deployment, UpstreamResponse response, IStreamDecoder decoder, StreamEvent[] firstEvents, long startedAt, long firstByteAt)
        => new() { Deployment = deployment, Response = response, Decoder = decoder, FirstEvents = firstEvents, StartedAt = startedAt, FirstByteAt = firstByteAt, _holdsSlot = true };

    public static AttemptOutcome Translated(Deployment deployment, UpstreamResponse response, ChatResponse answer, long startedAt, long firstByteAt)
        => new() { Deployment = deployment, Response = response, Answer = answer, StartedAt = startedAt, FirstByteAt = firstByteAt, _holdsSlot = true };

    public static AttemptOutcome Embedded(Deployment deployment, UpstreamResponse response, EmbeddingResponse embeddings, long startedAt, long firstByteAt)
        => new() { Deployment = deployment, Response = response, Embeddings = embeddings, StartedAt = startedAt, FirstByteAt = firstByteAt, _holdsSlot = true };

    /// <summary>The attempt failed with an error the provider's adapter classified.</summary>
    public static AttemptOutcome FromUpstream(Deployment deployment, UpstreamError error, long startedAt) => Failed(
        deployment,
        error.Kind switch
        {
            UpstreamErrorKind.RateLimited => AttemptFailure.RateLimited,
            UpstreamErrorKind.ContextLength => AttemptFailure.ContextLength,
            UpstreamErrorKind.ContentFilter => AttemptFailure.ContentFilter,
            UpstreamErrorKind.Misconfigured => AttemptFailure.Misconfigured,
            UpstreamErrorKind.ClientError => AttemptFailure.ClientError,
            UpstreamErrorKind.BadResponse => AttemptFailure.BadResponse,
            _ => AttemptFailure.ServerError,
        },
        error.Error,
        error.Detail,
        error.Status,
        error.RetryAfter,
        startedAt);

    public static AttemptOutcome Buffered(Deployment deployment, UpstreamResponse response, byte[] body, int length, in ResponseFacts facts, long startedAt, long firstByteAt)
        => new() { Deployment = deployment, Response = response, _body = body, BodyLength = length, Facts = facts, StartedAt = startedAt, FirstByteAt = firstByteAt, _holdsSlot = true };

    public static AttemptOutcome Failed(Deployment? deployment, AttemptFailure failure, ApiError error, string detail, int upstreamStatus = 0, TimeSpan? retryAfter = null, long startedAt = 0)
        => new() { Deployment = deployment, Failure = failure, Error = error, Detail = detail, UpstreamStatus = upstreamStatus, RetryAfter = retryAfter, StartedAt = startedAt };

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (Activity is { IsStopped: false } activity)
        {
            // A span not ended on purpose (the client left mid-way) still ends here.
            activity.Stop();
        }

        Events?.Dispose();
        Decoder?.Dispose();
        if (Response is not null)
        {
            await Response.DisposeAsync().ConfigureAwait(false);
        }

        if (_body is { } body)
        {
            _body = null;
            ArrayPool<byte>.Shared.Return(body);
        }

        if (_holdsSlot)
        {
            _holdsSlot = false;
            Deployment?.State.Exit();
        }
    }
}
