using System.Buffers;
using System.IO.Pipelines;

namespace ModelGateway.FakeUpstream.Internal.Wires;

/// <summary>The three things a wire can answer for a validated request, each in its own shape.</summary>
internal interface IWireAnswer
{
    /// <summary>The whole success body of a non-streamed request.</summary>
    byte[] Body();

    /// <summary>The framed events of a streamed request.</summary>
    StreamPlan Stream();

    /// <summary>The error a non-2xx behaviour asks for.</summary>
    WireError Error(UpstreamBehavior behavior);
}

/// <summary>
/// Sends a provider wire's answer with the timing and faults a behaviour asks for, with the same semantics as the
/// OpenAI writer (<see cref="ResponseWriter"/>): delays, resets, HTML pages, truncated JSON, malformed and error
/// events, idle gaps, truncation, a missing end marker and stalls. Every wait observes the request's token.
/// </summary>
internal sealed class WireResponder
{
    /// <summary>How long flushed bytes get to reach the client before a mid-body reset (see <see cref="ResponseWriter"/>).</summary>
    private static readonly TimeSpan ResetSettleTime = TimeSpan.FromMilliseconds(250);

    private readonly TimeProvider _time;

    public WireResponder(TimeProvider time) => _time = time;

    public async Task RespondAsync(HttpContext context, UpstreamBehavior behavior, IWireAnswer answer, bool stream, ExchangeState state, CancellationToken cancellationToken)
    {
        await DelayAsync(behavior.HeaderDelay, cancellationToken).ConfigureAwait(false);
        switch (behavior.Fault)
        {
            case UpstreamFault.ResetBeforeHeaders:
                Abort(context, state);
                return;
            case UpstreamFault.HtmlErrorPage:
                var status = behavior.StatusCode is >= 200 and < 300 ? StatusCodes.Status502BadGateway : behavior.StatusCode;
                await WriteBodyAsync(context, status, "text/html", ErrorBodies.NginxPage(status), behavior.Headers, state, cancellationToken).ConfigureAwait(false);
                return;
        }

        if (behavior.StatusCode is < 200 or >= 300)
        {
            await WriteErrorAsync(context, answer.Error(behavior), behavior.Headers, state, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (stream && behavior.Fault != UpstreamFault.InvalidJson)
        {
            await StreamAsync(context, behavior, answer.Stream(), state, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await WriteCompleteAsync(context, behavior, answer.Body(), state, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes a wire error: its own headers first, then the behaviour's (which win).</summary>
    public static Task WriteErrorAsync(
        HttpContext context,
        WireError error,
        IReadOnlyDictionary<string, string>? extraHeaders,
        ExchangeState state,
        CancellationToken cancellationToken)
    {
        ApplyHeaders(context.Response, error.Headers);
        return WriteBodyAsync(context, error.Status, error.ContentType, error.Body, extraHeaders, state, cancellationToken);
    }

    private static async Task WriteBodyAsync(
        HttpContext context,
        int status,
        string contentType,
        ReadOnlyMemory<byte> body,
        IReadOnlyDictionary<string, string>? headers,
        ExchangeState state,
        CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = contentType;
        response.ContentLength = body.Length;
        ApplyHeaders(response, headers);
        await WriteAndFlushAsync(response.BodyWriter, body, state, cancellationToken).ConfigureAwait(false);
        state.ResponseComplete = !state.ClientGone;
    }

    private async Task WriteCompleteAsync(HttpContext context, UpstreamBehavior behavior, ReadOnlyMemory<byte> body, ExchangeState state, CancellationToken cancellationToken)
    {
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
                ApplyHeaders(response, behavior.Headers);
                await WriteAndFlushAsync(response.BodyWriter, body[..(body.Length / 2)], state, cancellationToken).ConfigureAwait(false);
                await DelayAsync(ResetSettleTime, cancellationToken).ConfigureAwait(false);
                Abort(context, state);
                return;
            case UpstreamFault.IdleGap:
                response.ContentLength = body.Length;
                ApplyHeaders(response, behavior.Headers);
                await response.StartAsync(cancellationToken).ConfigureAwait(false);
                await FlushAsync(response.BodyWriter, state, cancellationToken).ConfigureAwait(false);
                await DelayAsync(behavior.IdleGap, cancellationToken).ConfigureAwait(false);
                await WriteAndFlushAsync(response.BodyWriter, body, state, cancellationToken).ConfigureAwait(false);
                state.ResponseComplete = !state.ClientGone;
                return;
        }

        response.ContentLength = body.Length;
        ApplyHeaders(response, behavior.Headers);
        await WriteAndFlushAsync(response.BodyWriter, body, state, cancellationToken).ConfigureAwait(false);
        state.ResponseComplete = !state.ClientGone;
    }

    private async Task StreamAsync(HttpContext context, UpstreamBehavior behavior, StreamPlan plan, ExchangeState state, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = behavior.StatusCode;
        response.ContentType = plan.ContentType;
        ApplyHeaders(response, behavior.Headers);
        await response.StartAsync(cancellationToken).ConfigureAwait(false);
        var output = response.BodyWriter;
        if (!await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        await DelayAsync(behavior.FirstChunkDelay, cancellationToken).ConfigureAwait(false);
        var pieces = plan.PieceCount;
        var lastFaultPoint = plan.FinishRidesOnLastPiece ? Math.Max(0, pieces - 1) : pieces;
        var faultAt = behavior.Fault is UpstreamFault.None or UpstreamFault.OmitDone or UpstreamFault.StallAfterFinish
            ? -1
            : Math.Clamp(behavior.FaultAfterChunks, 0, lastFaultPoint);
        var written = 0;
        foreach (var item in plan.Items)
        {
            if (written == faultAt && (item.IsPiece || written == pieces))
            {
                faultAt = -1;
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
                        output.Write(plan.ErrorEvent);
                        if (await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
                        {
                            state.ResponseComplete = true;
                        }

                        return;
                    case UpstreamFault.MalformedSseEvent:
                        output.Write(plan.MalformedEvent);
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

            if (item.IsTerminator)
            {
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
            }

            if (item.IsPiece)
            {
                await DelayAsync(behavior.ChunkDelay, cancellationToken).ConfigureAwait(false);
                if (written == pieces - 1 && behavior.HoldBeforeLastChunk is { } hold)
                {
                    await WaitForHoldAsync(hold, cancellationToken).ConfigureAwait(false);
                }

                written++;
            }

            output.Write(item.Bytes);
            if (!await FlushAsync(output, state, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
        }

        state.ResponseComplete = true;
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

    private static void ApplyHeaders(HttpResponse response, IReadOnlyDictionary<string, string>? headers)
    {
        if (headers is null)
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
}
