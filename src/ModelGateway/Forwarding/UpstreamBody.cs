using ModelGateway.Providers;

namespace ModelGateway.Forwarding;

/// <summary>
/// The client's JSON body with a few byte-level edits (the model id, the usage request, a
/// continuation prefill), read upstream as segments of the original buffer. Nothing is
/// re-serialized and the body is never copied whole.
/// </summary>
internal sealed class SplicedBody
{
    private readonly ReadOnlyMemory<byte> _source;
    private readonly BodyEdit[] _edits;
    private readonly int _editCount;

    public SplicedBody(ReadOnlyMemory<byte> source, BodyEdit[] edits, int editCount)
    {
        _source = source;
        _edits = edits;
        _editCount = editCount;
        long length = source.Length;
        for (var i = 0; i < editCount; i++)
        {
            length += edits[i].Insert.Length - edits[i].RemoveLength;
        }

        Length = length;
    }

    public long Length { get; }

    /// <summary>A body written whole by a request mapper (the translated path).</summary>
    public static SplicedBody Whole(byte[] body) => new(body, [], 0);

    /// <summary>Feeds every byte of the body to <paramref name="sink"/>, segment by segment (for signatures).</summary>
    public void CopyTo(Action<ReadOnlySpan<byte>> sink)
    {
        for (var i = 0; i < SegmentCount; i++)
        {
            sink(Segment(i).Span);
        }
    }

    /// <summary>A fresh read-only stream over the edited body; one per attempt, since a failover re-sends it.</summary>
    public Stream OpenRead() => new SegmentStream(this);

    /// <summary>Materializes the edited body; for tests and diagnostics, not the hot path.</summary>
    public byte[] ToArray()
    {
        using var stream = OpenRead();
        using var buffer = new MemoryStream((int)Length);
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    // The body as a sequence of segments: original bytes between edits, and each edit's insert.
    private ReadOnlyMemory<byte> Segment(int index)
    {
        // Even indexes are stretches of the original, odd ones inserts: 0, insert0, 1, insert1, ..., last original stretch.
        var edit = index / 2;
        if (index % 2 == 1)
        {
            return _edits[edit].Insert;
        }

        var start = edit == 0 ? 0 : _edits[edit - 1].Offset + _edits[edit - 1].RemoveLength;
        var end = edit < _editCount ? _edits[edit].Offset : _source.Length;
        return _source[start..end];
    }

    private int SegmentCount => (_editCount * 2) + 1;

    private sealed class SegmentStream(SplicedBody body) : Stream
    {
        private int _segment;
        private int _offset;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => body.Length;
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> destination)
        {
            var written = 0;
            while (written < destination.Length && _segment < body.SegmentCount)
            {
                var segment = body.Segment(_segment).Span[_offset..];
                var take = Math.Min(segment.Length, destination.Length - written);
                segment[..take].CopyTo(destination[written..]);
                written += take;
                _offset += take;
                if (_offset == body.Segment(_segment).Length)
                {
                    _segment++;
                    _offset = 0;
                }
            }

            return written;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => new(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer, offset, count));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>Replace <see cref="RemoveLength"/> bytes at <see cref="Offset"/> with <see cref="Insert"/>.</summary>
internal readonly record struct BodyEdit(int Offset, int RemoveLength, ReadOnlyMemory<byte> Insert);

/// <summary>Builds the upstream body for an OpenAI-compatible provider.</summary>
internal static class UpstreamBody
{
    private static readonly ReadOnlyMemory<byte> True = "true"u8.ToArray();
    private static readonly ReadOnlyMemory<byte> IncludeUsageField = "\"include_usage\":true"u8.ToArray();
    private static readonly ReadOnlyMemory<byte> IncludeUsageFieldComma = "\"include_usage\":true,"u8.ToArray();
    private static readonly ReadOnlyMemory<byte> StreamOptionsField = "\"stream_options\":{\"include_usage\":true},"u8.ToArray();
    private static readonly ReadOnlyMemory<byte> ContinueFlags = "\"continue_final_message\":true,\"add_generation_prompt\":false,"u8.ToArray();
    private static readonly ReadOnlyMemory<byte> AssistantPrefix = ",{\"role\":\"assistant\",\"content\":"u8.ToArray();
    private static readonly ReadOnlyMemory<byte> ObjectEnd = "}"u8.ToArray();

    /// <summary>The client's body with only <c>model</c> replaced: the pass-through of every other wire.</summary>
    public static SplicedBody SpliceModel(UpstreamRequest call)
    {
        var request = call.Request;
        ref readonly var info = ref request.Info;
        var upstreamModel = call.Deployment.UpstreamModelJson;
        return request.Body.Slice(info.ModelStart, info.ModelLength).SequenceEqual(upstreamModel)
            ? new SplicedBody(request.BodyMemory, [], 0)
            : new SplicedBody(request.BodyMemory, [new BodyEdit(info.ModelStart, info.ModelLength, upstreamModel)], 1);
    }

    public static SplicedBody ForOpenAI(UpstreamRequest call)
    {
        var request = call.Request;
        ref readonly var info = ref request.Info;
        var edits = new BodyEdit[5];
        var count = 0;

        var body = request.Body;
        var upstreamModel = call.Deployment.UpstreamModelJson;
        if (!body.Slice(info.ModelStart, info.ModelLength).SequenceEqual(upstreamModel))
        {
            edits[count++] = new BodyEdit(info.ModelStart, info.ModelLength, upstreamModel);
        }

        if (info.Stream && call.AskForStreamUsage && info.IncludeUsage != true)
        {
            if (info.IncludeUsage == false)
            {
                edits[count++] = new BodyEdit(info.IncludeUsageStart, info.IncludeUsageLength, True);
            }
            else if (info.StreamOptionsPresent)
            {
                edits[count++] = new BodyEdit(info.StreamOptionsStart + 1, 0, info.StreamOptionsEmpty ? IncludeUsageField : IncludeUsageFieldComma);
            }
            else
            {
                edits[count++] = new BodyEdit(info.BodyStart + 1, 0, StreamOptionsField);
            }
        }

        if (call.IsContinuation)
        {
            // vLLM-style prefill: the final assistant message is continued, not answered.
            edits[count++] = new BodyEdit(info.BodyStart + 1, 0, ContinueFlags);
            edits[count++] = new BodyEdit(info.MessagesEnd, 0, Concat(AssistantPrefix.Span, call.PrefillJson.Span, ObjectEnd.Span));
        }

        SortByOffset(edits, count);
        return new SplicedBody(request.BodyMemory, edits, count);
    }

    private static byte[] Concat(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c)
    {
        var result = new byte[a.Length + b.Length + c.Length];
        a.CopyTo(result);
        b.CopyTo(result.AsSpan(a.Length));
        c.CopyTo(result.AsSpan(a.Length + b.Length));
        return result;
    }

    // At most five edits: an insertion sort keeps equal offsets in the order they were added.
    private static void SortByOffset(BodyEdit[] edits, int count)
    {
        for (var i = 1; i < count; i++)
        {
            var current = edits[i];
            var j = i - 1;
            while (j >= 0 && edits[j].Offset > current.Offset)
            {
                edits[j + 1] = edits[j];
                j--;
            }

            edits[j + 1] = current;
        }
    }
}
