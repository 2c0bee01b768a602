using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace ModelGateway.Caching;

/// <summary>
/// A response body that also keeps a copy of what the relay writes, so a streamed answer can be stored
/// in the cache once it has ended well. Installed only for requests the cache may store; the relay does
/// not know it is there. Stops copying (and the answer is not stored) past the route's entry limit.
/// </summary>
internal sealed class CapturingBody : IHttpResponseBodyFeature
{
    private readonly IHttpResponseBodyFeature _inner;
    private readonly CapturingWriter _writer;

    public CapturingBody(IHttpResponseBodyFeature inner, int limit)
    {
        _inner = inner;
        _writer = new CapturingWriter(inner.Writer, limit);
    }

    /// <summary>True when the answer grew past the limit: the copy is incomplete.</summary>
    public bool Overflowed => _writer.Overflowed;

    public ReadOnlyMemory<byte> Captured => _writer.Captured;

    public Stream Stream => _inner.Stream;

    public PipeWriter Writer => _writer;

    public Task CompleteAsync() => _inner.CompleteAsync();

    public void DisableBuffering() => _inner.DisableBuffering();

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
        => _inner.SendFileAsync(path, offset, count, cancellationToken);

    public Task StartAsync(CancellationToken cancellationToken = default) => _inner.StartAsync(cancellationToken);

    private sealed class CapturingWriter(PipeWriter inner, int limit) : PipeWriter
    {
        private readonly ArrayBufferWriter<byte> _copy = new(4096);
        private Memory<byte> _last;

        public bool Overflowed { get; private set; }

        public ReadOnlyMemory<byte> Captured => _copy.WrittenMemory;

        public override void Advance(int bytes)
        {
            if (!Overflowed && bytes > 0)
            {
                if (_copy.WrittenCount + bytes > limit)
                {
                    Overflowed = true;
                }
                else
                {
                    _copy.Write(_last.Span[..bytes]);
                }
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

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;
    }
}
