using System.IO.Pipelines;

namespace ModelGateway.Forwarding;

/// <summary>
/// Collects the pass-through events of one network read into one span of the response's writer, so they
/// are committed with one <see cref="PipeWriter.Advance"/>: every Advance on Kestrel's response writer takes
/// the connection's lock, and a read usually carries several events. Nothing else may write to the writer
/// between <see cref="Append"/> and <see cref="Commit"/>: commit before any other write and before a flush.
/// </summary>
internal struct EventBatch
{
    private Memory<byte> _buffer;
    private int _written;

    /// <summary>Appends <c>prefix</c>, <c>data</c> and <c>suffix</c> as one event.</summary>
    public void Append(PipeWriter writer, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> data, ReadOnlySpan<byte> suffix)
    {
        var length = prefix.Length + data.Length + suffix.Length;
        if (_buffer.Length - _written < length)
        {
            Commit(writer);

            // Only what this event needs: the writer then hands over the rest of its current block, which the
            // next events of the read fill. A larger hint would start a new block (and a new chunk) every read.
            _buffer = writer.GetMemory(length);
        }

        var span = _buffer.Span[_written..];
        prefix.CopyTo(span);
        data.CopyTo(span[prefix.Length..]);
        suffix.CopyTo(span[(prefix.Length + data.Length)..]);
        _written += length;
    }

    /// <summary>Hands what was appended to the writer (a no-op when nothing was).</summary>
    public void Commit(PipeWriter writer)
    {
        if (_written > 0)
        {
            writer.Advance(_written);
        }

        _written = 0;
        _buffer = default;
    }
}
