using System.Net;
using System.Net.Http.Headers;
using ModelGateway.Providers;

namespace ModelGateway.Forwarding;

/// <summary>
/// The client's JSON body with a few byte-level edits (the model id, the usage request, a
/// continuation prefill), written upstream as segments of the original buffer. Nothing is
/// re-serialized and the body is never copied whole.
/// </summary>
internal sealed class SplicedJsonContent : HttpContent
{
    private static readonly MediaTypeHeaderValue JsonMediaType = new("application/json");

    private readonly ReadOnlyMemory<byte> _source;
    private readonly BodyEdit[] _edits;
    private readonly int _editCount;
    private readonly long _length;

    public SplicedJsonContent(ReadOnlyMemory<byte> source, BodyEdit[] edits, int editCount)
    {
        _source = source;
        _edits = edits;
        _editCount = editCount;
        long length = source.Length;
        for (var i = 0; i < editCount; i++)
        {
            length += edits[i].Insert.Length - edits[i].RemoveLength;
        }

        _length = length;
        Headers.ContentType = JsonMediaType;
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var position = 0;
        for (var i = 0; i < _editCount; i++)
        {
            var edit = _edits[i];
            if (edit.Offset > position)
            {
                await stream.WriteAsync(_source[position..edit.Offset], cancellationToken).ConfigureAwait(false);
            }

            if (!edit.Insert.IsEmpty)
            {
                await stream.WriteAsync(edit.Insert, cancellationToken).ConfigureAwait(false);
            }

            position = edit.Offset + edit.RemoveLength;
        }

        if (position < _source.Length)
        {
            await stream.WriteAsync(_source[position..], cancellationToken).ConfigureAwait(false);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _length;
        return true;
    }

    /// <summary>Materializes the edited body; for tests and diagnostics, not the hot path.</summary>
    public byte[] ToArray()
    {
        using var buffer = new MemoryStream((int)_length);
        SerializeToStreamAsync(buffer, null, CancellationToken.None).GetAwaiter().GetResult();
        return buffer.ToArray();
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

    public static SplicedJsonContent ForOpenAI(UpstreamRequest call)
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
        return new SplicedJsonContent(request.BodyMemory, edits, count);
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
