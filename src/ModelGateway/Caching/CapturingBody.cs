using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace ModelGateway.Caching;

/// <summary>
/// A response body that also copies what the relay writes into the request's <see cref="Flight"/>, so
/// identical requests follow the stream live and the answer can be stored once it has ended well.
/// Installed only for requests the cache may store; the relay does not know it is there. Past the
/// route's entry limit the answer is not stored (followers still get it).
/// </summary>
internal sealed class CapturingBody : IHttpResponseBodyFeature
{
    private readonly IHttpResponseBodyFeature _inner;
    private readonly CapturingWriter _writer;

    public CapturingBody(IHttpResponseBodyFeature inner, Flight flight)
    {
        _inner = inner;
        Flight = flight;
        _writer = new CapturingWriter(inner.Writer, flight);
    }

    /// <summary>Where the copy goes.</summary>
    public Flight Flight { get; }

    /// <summary>True when the answer grew past the limit: it is not stored.</summary>
    public bool Overflowed => Flight.Overflowed || Flight.Incomplete;

    public ReadOnlyMemory<byte> Captured => Flight.Captured;

    public Stream Stream => _inner.Stream;

    public PipeWriter Writer => _writer;

    public Task CompleteAsync() => _inner.CompleteAsync();

    public void DisableBuffering() => _inner.DisableBuffering();

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
        => _inner.SendFileAsync(path, offset, count, cancellationToken);

    public Task StartAsync(CancellationToken cancellationToken = default) => _inner.StartAsync(cancellationToken);

    private sealed class CapturingWriter(PipeWriter inner, Flight flight) : PipeWriter
    {
        private Memory<byte> _last;

        public override void Advance(int bytes)
        {
            if (bytes > 0)
            {
                flight.Append(_last.Span[..bytes]);
            }

            _last = default;
            inner.Advance(bytes);
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => _last = inner.GetMemory(sizeHint);

        // Through GetMemory, so Advance knows where the bytes were written.
        public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            // What the client is about to get, followers get too.
            flight.Pulse();
            return inner.FlushAsync(cancellationToken);
        }

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;
    }
}
