using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>
/// Writes responses to the wire: status and headers, JSON bodies, SSE framing with a flush after every event,
/// and the faults a behaviour asks for. Every wait observes the request's cancellation token.
/// </summary>
internal sealed class ResponseWriter
{
    /// <summary>
    /// How long bytes already flushed get to reach the client before a mid-body reset. Abort drops output the
    /// transport has not sent yet, so without this pause the client could see the reset before the chunks
    /// it is supposed to have received first.
    /// </summary>
    private static readonly TimeSpan ResetSettleTime = TimeSpan.FromMilliseconds(250);

    private readonly TimeProvider _time;

    public ResponseWriter(TimeProvider time) => _time = time;

    private static ReadOnlySpan<byte> DataPrefix => "data: "u8;

    private static ReadOnlySpan<byte> EventEnd => "\n\n"u8;

    private static ReadOnlySpan<byte> DoneEvent => "data: [DONE]\n\n"u8;

    private static ReadOnlySpan<byte> MalformedEvent => "data: {not json\n\n"u8;

    /// <summary>Sends the response a behaviour describes for an already validated request.</summary>
    public async Task RespondAsync(
        HttpContext context,
        UpstreamBehavior behavior,
        string model,
        ResponseSource source,
        bool stream,
        ExchangeState state,
        CancellationToken cancellationToken)
    {
        await DelayAsync(behavior.HeaderDelay, cancellationToken).ConfigureAwait(false);
        switch (behavior.Fault)
        {
            case UpstreamFault.ResetBeforeHeaders:
                Abort(context, state);
                return;
            case UpstreamFault.HtmlErrorPage:
                var status = behavior.StatusCode is >= 200 and < 300 ? StatusCodes.Status502BadGateway : behavior.StatusCode;
                await WriteBodyAsync(context, status, "text/html", ErrorBodies.NginxPage(status), behavior, state, cancellationToken)
                    .ConfigureAwait(false);
                return;
        }

        if (behavior.StatusCode is < 200 or >= 300)
        {
            await WriteBodyAsync(context, behavior.StatusCode, "application/json", ErrorBodies.ForBehavior(behavior, model), behavior, state, cancellationToken)
                .ConfigureAwait(false);
            return;
        }

        if (stream && behavior.Fault != UpstreamFault.InvalidJson)
        {
            await StreamAsync(context, behavior, source, state, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await WriteCompleteAsync(context, behavior, source, state, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes a whole body with Content-Length, plus the behaviour's extra headers if there is one.</summary>
    public static async Task WriteBodyAsync(
        HttpContext context,
        int status,
        string contentType,
        ReadOnlyMemory<byte> body,
        UpstreamBehavior? behavior,
        ExchangeState state,
        CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = contentType;
        response.ContentLength = body.Length;
        ApplyHeaders(response, behavior);
        await WriteAndFlushAsync(response.BodyWriter, body, state, cancellationToken).ConfigureAwait(false);
        state.ResponseComplete = !state.ClientGone;
    }

    private async Task WriteCompleteAsync(
        HttpContext context,
        UpstreamBehavior behavior,
        ResponseSource source,
        ExchangeState state,
        CancellationToken cancellationToken)
    {
        using var buffer = new PooledBufferWriter(2048);
        source.WriteBody(buffer);
        var body = buffer.WrittenMemory;
        var response = context.Response;
        response.StatusCode = behavior.StatusCode;
        response.ContentType = "application/json";
        switch (behavior.Fault)
        {
            case UpstreamFault.InvalidJson:
                // Half an object is never valid JSON: its closing brace is missing.
                body = body[..(body.Length / 2)];
                break;
            case UpstreamFault.ResetAfterChunks:
                response.ContentLength = body.Length;
                ApplyHeaders(response, behavior);
                await WriteAndFlushAsync(response.BodyWriter, body[..(body.Length / 2)], state, cancellationToken).ConfigureAwait(false);
                await DelayAsync(ResetSettleTime, cancellationToken).ConfigureAwait(false);
                Abort(context, state);
                return;
            case UpstreamFault.IdleGap:
                response.ContentLength = body.Length;
                ApplyHeaders(response, behavior);
                await response.StartAsync(cancellationToken).ConfigureAwait(false);
                await FlushAsync(response.BodyWriter, state, cancellationToken).ConfigureAwait(false);
                await DelayAsync(behavior.IdleGap, cancellationToken).ConfigureAwait(false);
                await WriteAndFlushAsync(response.BodyWriter, body, state, cancellationToken).ConfigureAwait(false);
                state.ResponseComplete = !state.ClientGone;
                return;
        }

        response.ContentLength = body.Length;
        ApplyHeaders(response, behavior);
        await WriteAndFlushAsync(response.BodyWriter, body, state, cancellationToken).ConfigureAwait(false);
        state.ResponseComplete = !state.ClientGone;
    }

    private async Task StreamAsync(
        HttpContext context,
        UpstreamBehavior behavior,
        ResponseSource source,
        ExchangeState state,
        CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = behavior.StatusCode;
        response.ContentType = "text/event-stream; charset=utf-8";
        ApplyHeaders(response, behavior);
        await response.StartAsync(cancellationToken).ConfigureAwait(false);
        var output = response.BodyWriter;
        if (!await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        await DelayAsync(behavior.FirstChunkDelay, cancellationToken).ConfigureAwait(false);
        var formatter = source.Formatter;
        var choices = formatter.Choices;
        if (formatter.HasStartChunk)
        {
            for (var choice = 0; choice < choices; choice++)
            {
                WriteEvent(output, source, EventKind.Start, choice, 0);
                if (!await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
                {
                    return;
                }
            }
        }

        var pieces = formatter.PieceCount;
        var faultAt = Math.Clamp(behavior.FaultAfterChunks, 0, pieces);
        for (var piece = 0; piece <= pieces; piece++)
        {
            if (piece == faultAt)
            {
                switch (behavior.Fault)
                {
                    case UpstreamFault.ResetAfterChunks:
                        await DelayAsync(ResetSettleTime, cancellationToken).ConfigureAwait(false);
                        Abort(context, state);
                        return;
                    case UpstreamFault.TruncatedStream:
                        state.ResponseComplete = true;
                        return;
                    case UpstreamFault.ErrorEvent:
                        // OpenAI reports a failure after the stream started as a data event holding an error object.
                        output.Write(DataPrefix);
                        output.Write(ErrorBodies.OpenAI(
                            behavior.ErrorMessage ?? "The server had an error while processing your request. Sorry about that!",
                            behavior.ErrorType ?? "server_error",
                            behavior.ErrorParam,
                            behavior.ErrorCode));
                        output.Write(EventEnd);
                        if (await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
                        {
                            state.ResponseComplete = true;
                        }

                        return;
                    case UpstreamFault.MalformedSseEvent:
                        output.Write(MalformedEvent);
                        if (!await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
                        {
                            return;
                        }

                        break;
                    case UpstreamFault.IdleGap:
                        await DelayAsync(behavior.IdleGap, cancellationToken).ConfigureAwait(false);
                        break;
                }
            }

            if (piece == pieces)
            {
                break;
            }

            await DelayAsync(behavior.ChunkDelay, cancellationToken).ConfigureAwait(false);
            if (piece == pieces - 1 && behavior.HoldBeforeLastChunk is { } hold)
            {
                await WaitForHoldAsync(hold, cancellationToken).ConfigureAwait(false);
            }

            for (var choice = 0; choice < choices; choice++)
            {
                WriteEvent(output, source, EventKind.Piece, choice, piece);
                if (!await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
                {
                    return;
                }
            }
        }

        for (var choice = 0; choice < choices; choice++)
        {
            WriteEvent(output, source, EventKind.Finish, choice, 0);
            if (!await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
        }

        if (formatter.IncludeUsage)
        {
            WriteEvent(output, source, EventKind.Usage, 0, 0);
            if (!await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
        }

        switch (behavior.Fault)
        {
            case UpstreamFault.OmitDone:
                state.ResponseComplete = true;
                return;
            case UpstreamFault.StallAfterFinish:
                // Ends only when the client (or the server's shutdown) cancels.
                await Task.Delay(Timeout.InfiniteTimeSpan, _time, cancellationToken).ConfigureAwait(false);
                return;
        }

        output.Write(DoneEvent);
        if (await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
        {
            state.ResponseComplete = true;
        }
    }

    private static void WriteEvent(PipeWriter output, ResponseSource source, EventKind kind, int choice, int piece)
    {
        output.Write(DataPrefix);
        switch (kind)
        {
            case EventKind.Start:
                source.WriteStartChunk(output, choice);
                break;
            case EventKind.Piece:
                source.WritePieceChunk(output, choice, piece);
                break;
            case EventKind.Finish:
                source.WriteFinishChunk(output, choice);
                break;
            default:
                source.WriteUsageChunk(output);
                break;
        }

        output.Write(EventEnd);
    }

    private static async Task WaitForHoldAsync(Task hold, CancellationToken cancellationToken)
    {
        try
        {
            await hold.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // A faulted or cancelled hold still releases the chunk: the test decided to let go.
        }
    }

    private Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken) =>
        delay > TimeSpan.Zero ? Task.Delay(delay, _time, cancellationToken) : Task.CompletedTask;

    private static void Abort(HttpContext context, ExchangeState state)
    {
        state.ServerFault = true;
        context.Abort();
    }

    private static void ApplyHeaders(HttpResponse response, UpstreamBehavior? behavior)
    {
        if (behavior?.Headers is not { } headers)
        {
            return;
        }

        foreach (var (name, value) in headers)
        {
            response.Headers[name] = value;
        }
    }

    private static async ValueTask WriteAndFlushAsync(PipeWriter output, ReadOnlyMemory<byte> body, ExchangeState state, CancellationToken cancellationToken)
    {
        var result = await output.WriteAsync(body, cancellationToken).ConfigureAwait(false);
        if (result.IsCanceled || result.IsCompleted)
        {
            state.ClientGone = true;
        }
    }

    /// <returns>False when the client is gone and writing should stop.</returns>
    private static async ValueTask<bool> FlushAsync(PipeWriter output, ExchangeState state, CancellationToken cancellationToken)
    {
        var result = await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (result.IsCanceled || result.IsCompleted)
        {
            state.ClientGone = true;
            return false;
        }

        return true;
    }

    private enum EventKind
    {
        Start,
        Piece,
        Finish,
        Usage,
    }
}

/// <summary>Lists models for <c>GET /v1/models</c>.</summary>
internal static class ModelList
{
    /// <summary>A fixed timestamp keeps the list byte-for-byte stable.</summary>
    private const long Created = 1686935002;

    public static byte[] Write(IEnumerable<string> models)
    {
        using var buffer = new PooledBufferWriter(512);
        using (var writer = new Utf8JsonWriter(buffer, JsonFormat.WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("object"u8, "list"u8);
            writer.WriteStartArray("data"u8);
            foreach (var model in models)
            {
                writer.WriteStartObject();
                writer.WriteString("id"u8, model);
                writer.WriteString("object"u8, "model"u8);
                writer.WriteNumber("created"u8, Created);
                writer.WriteString("owned_by"u8, "fake"u8);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
