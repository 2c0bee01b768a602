using System.Buffers;
using System.IO.Pipelines;
using System.Text.Encodings.Web;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Protocols;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Observability;
using ModelGateway.Resilience;
using ModelGateway.Routing;
using ModelGateway.Wire;

namespace ModelGateway.Forwarding;

/// <summary>
/// The one place that writes an upstream's answer to the client. Non-streamed bodies go out whole.
/// Streams go out event by event, flushed after every network read so nothing is held back. On the
/// pass-through path the upstream's events are relayed as they are; on the translated path the
/// provider's decoder is pulled on this loop and the client protocol's encoder writes each canonical
/// event. Either way the relay takes usage from the stream (dropping the usage chunk the client did
/// not ask for), ends a finished stream without waiting for a lagging end marker, and never lets a
/// broken stream look complete: it continues on another deployment when the route allows (in either
/// mode), or sends an error event and aborts the connection.
/// </summary>
internal sealed partial class ResponseRelay(FailoverExecutor executor, TokenEstimator tokens, GatewayTracing tracing, TimeProvider timeProvider, GatewayOptions options, ILogger<ResponseRelay> logger)
{
    private static ReadOnlySpan<byte> DataPrefix => "data: "u8;
    private static ReadOnlySpan<byte> EventEnd => "\n\n"u8;
    private static ReadOnlySpan<byte> DoneEvent => "data: [DONE]\n\n"u8;

    /// <summary>Starts an SSE response (status, headers) if nothing has been sent yet.</summary>
    public static void StartEventStream(HttpResponse response)
    {
        if (response.HasStarted)
        {
            return;
        }

        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["x-accel-buffering"] = "no";
    }

    public async Task WriteBufferedAsync(GatewayRequest request, AttemptOutcome outcome, CancellationToken cancellationToken)
    {
        var response = request.HttpContext.Response;
        if (outcome.Embeddings is { } embeddings)
        {
            // Providers that report no usage for embeddings (Gemini) are billed on the gateway's own count of the input.
            if (!embeddings.Usage.Reported)
            {
                embeddings = new EmbeddingResponse { Vectors = embeddings.Vectors, Usage = EstimateUsage(request, outcome.Deployment!, 0, null) };
            }

            var list = new ArrayBufferWriter<byte>(4096);
            request.Protocol.WriteEmbeddings(request, embeddings, outcome.Deployment!.UpstreamModel, list);
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/json";
            response.ContentLength = list.WrittenCount;
            request.Usage = embeddings.Usage;
            await response.Body.WriteAsync(list.WrittenMemory, cancellationToken).ConfigureAwait(false);
            request.StreamCompleted = true;
            return;
        }

        if (outcome.Answer is { } answer)
        {
            var body = new ArrayBufferWriter<byte>(1024);
            request.Protocol.WriteResponse(request, answer, outcome.Deployment!.UpstreamModel, timeProvider.GetUtcNow().ToUnixTimeSeconds(), body);
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/json";
            response.ContentLength = body.WrittenCount;
            request.FinishReason = answer.Finish;
            request.Usage = answer.Usage.Reported ? answer.Usage : EstimateUsage(request, outcome.Deployment, System.Text.Encoding.UTF8.GetByteCount(answer.Text), null);
            if (tracing.CaptureContent)
            {
                request.CapturedOutput = answer.Text;
            }

            await request.Protocol.AnswerCompletingAsync(request, outcome, cancellationToken).ConfigureAwait(false);
            await response.Body.WriteAsync(body.WrittenMemory, cancellationToken).ConfigureAwait(false);
            request.StreamCompleted = true;
            return;
        }

        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json";
        response.ContentLength = outcome.BodyLength;
        request.FinishReason = outcome.Facts.FinishReason;
        request.Usage = outcome.Facts.HasUsage ? outcome.Facts.Usage : EstimateUsage(request, outcome.Deployment!, outcome.Facts.OutputTextBytes, null);
        if (tracing.CaptureContent)
        {
            request.CapturedOutput = System.Text.Encoding.UTF8.GetString(outcome.Body.Span);
        }

        await request.Protocol.AnswerCompletingAsync(request, outcome, cancellationToken).ConfigureAwait(false);
        await response.Body.WriteAsync(outcome.Body, cancellationToken).ConfigureAwait(false);
        request.StreamCompleted = true;
    }

    public async Task RelayStreamAsync(GatewayRequest request, AttemptOutcome outcome, CancellationToken cancellationToken)
    {
        var context = request.HttpContext;
        StartEventStream(context.Response);
        var writer = context.Response.BodyWriter;
        var route = request.Route!;
        // A pass-through stream is continued only where the client API's encoder can take it over (not Responses).
        var continuation = route.Resilience.Continuation && request.Operation == Operation.ChatCompletions && request.Info.N == 1
            && (outcome.Decoder is not null || request.Protocol.ContinuesPassThrough);
        var stream = new StreamProgress(request, outcome.Deployment!) { KeepsIdentity = continuation };
        var text = continuation || !outcome.Deployment!.StreamUsage || tracing.CaptureContent ? new RawTextCollector() : null;
        IStreamEncoder? encoder = null;

        try
        {
            while (true)
            {
                // Each attempt has its own idle clock: the silence that ended one must not end its continuation too.
                await using var idle = new IdleWatchdog(timeProvider, cancellationToken);
                var idleTimeout = outcome.Deployment!.IdleTimeout ?? route.Resilience.IdleTimeout;

                ApiError? failure;
                if (outcome.Decoder is not null)
                {
                    encoder ??= CreateEncoder(request, outcome, stream);
                    failure = await PumpDecodedAsync(writer, outcome, encoder, stream, text, idle, idleTimeout, cancellationToken).ConfigureAwait(false);
                    stream.RememberIdentity(encoder);
                }
                else if (request.Protocol.NamedEvents is { } named)
                {
                    // With continuation on, the client's encoder follows the pass-through events, so a translated
                    // continuation can carry on inside the message and content block the client already has.
                    encoder ??= continuation ? CreateEncoder(request, outcome, stream) : null;
                    failure = await PumpNamedAsync(writer, outcome, named, stream, encoder as IPassThroughObserver, text, idle, idleTimeout, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    failure = await PumpAsync(writer, outcome, stream, text, idle, idleTimeout, cancellationToken).ConfigureAwait(false);
                }

                if (failure is null)
                {
                    if (outcome.Decoder is null && request.Protocol.NamedEvents is { } named)
                    {
                        if (!stream.TerminalSeen)
                        {
                            named.WriteMissingEnd(writer, stream.Usage, stream.FinishReason);
                        }
                    }
                    else if (encoder is not null)
                    {
                        encoder.Complete(writer);
                    }
                    else
                    {
                        writer.Write(DoneEvent);
                    }

                    await request.Protocol.AnswerCompletingAsync(request, outcome, cancellationToken).ConfigureAwait(false);
                    await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
                    request.StreamCompleted = true;
                    break;
                }

                var broken = outcome.Deployment!;
                LogStreamBroken(logger, request.RequestId, broken.Name, stream.Events, failure.Message);
                broken.State.Circuit.ReportFailure();
                broken.State.CountFailure();

                // Still one upstream call: the attempt that had answered is marked broken, not counted again.
                request.Attempts.MarkBroken(broken.Name, FailureOf(failure), timeProvider.GetElapsedTime(outcome.StartedAt), failure.Code + ": " + failure.Message);

                AttemptOutcome? next = null;
                if (continuation && !stream.SawToolCalls && text is not null)
                {
                    next = await executor.ContinueAsync(request, broken, text.ToJsonLiteral(), cancellationToken).ConfigureAwait(false);
                }

                if (next is null)
                {
                    request.ErrorCode = failure.Code;
                    await FailStreamAsync(context, failure, timeProvider, options, encoder, request.Protocol).ConfigureAwait(false);
                    break;
                }

                // What the client got from the broken attempt is counted before the next one starts.
                stream.Break(text!, tokens);
                GatewayTracing.Broken(outcome.Activity, failure.Message);
                await outcome.DisposeAsync().ConfigureAwait(false);
                outcome = next;
                stream.SwitchTo(outcome.Deployment!);
                request.ServedBy = outcome.Deployment;
                request.Continued = true;

                // Some providers refuse a prefill ending in whitespace (Anthropic), so the mapper trims it and the
                // model starts again with the space the client already has: the continuation drops it.
                stream.SkipLeadingWhitespace = outcome.Decoder is not null && text!.EndsWithWhitespace;
                LogContinued(logger, request.RequestId, broken.Name, outcome.Deployment!.Name);
            }
        }
        finally
        {
            stream.Account(outcome, text, tokens);
            request.Usage = stream.Usage;
            request.FinishReason = stream.FinishReason;
            if (tracing.CaptureContent && text is not null)
            {
                request.CapturedOutput = text.ToText();
            }

            // The handler disposes the first outcome; a continuation's is this relay's to end.
            if (request.Continued)
            {
                tracing.Completed(outcome.Activity, request, request.CapturedOutput);
                await outcome.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    // How a stream that had started broke, for the attempt log.
    private static AttemptFailure FailureOf(ApiError failure) => failure.Code switch
    {
        "stream_idle_timeout" => AttemptFailure.Timeout,
        "bad_upstream_response" => AttemptFailure.BadResponse,
        "upstream_error" => AttemptFailure.ServerError,
        _ => AttemptFailure.Transport,
    };

    // Relays events until the stream ends well (null) or breaks (the error to report). The outcome's reader starts on its first event.
    private async ValueTask<ApiError?> PumpAsync(
        PipeWriter writer, AttemptOutcome outcome, StreamProgress stream, RawTextCollector? text,
        IdleWatchdog idle, TimeSpan idleTimeout, CancellationToken cancellationToken)
    {
        var events = outcome.Events!;
        var request = stream.Request;
        var clientWantsUsage = request.Info.IncludeUsage == true;
        var upstreamSendsUsage = request.Info.IncludeUsage == true || outcome.Deployment!.StreamUsage;
        var expectedChoices = request.Info.N;
        var batch = default(EventBatch);
        try
        {
            while (true)
            {
                if (events.IsDone)
                {
                    return null;
                }

                var data = events.Data;

                // The first event's id and model (kept for a continuation), collected text (continuations,
                // counting) and a continuation's rewrites need a full read.
                var scanned = text is null && !stream.Continued && (stream.Events > 0 || !stream.KeepsIdentity)
                    ? ResponseInspector.TryScan(data, out var facts)
                    : ResponseInspector.TryInspect(data, out facts, text);
                if (!scanned)
                {
                    return StreamError("The upstream sent a malformed event; the answer is incomplete.", "bad_upstream_response");
                }

                if (facts.IsError)
                {
                    return StreamError("The upstream reported an error mid-stream; the answer is incomplete.", "upstream_error");
                }

                stream.Observe(data, facts);
                var dropUsageChunk = facts.HasUsage && facts.ChoiceCount == 0 && !clientWantsUsage;
                if (!dropUsageChunk)
                {
                    WriteEvent(writer, ref batch, data, facts, stream);
                }

                if (stream.Finished >= expectedChoices && (stream.UsageSeen || !upstreamSendsUsage))
                {
                    // Everything the client needs has arrived: finish now rather than wait for a lagging [DONE].
                    return null;
                }

                while (!events.TryReadEvent())
                {
                    batch.Commit(writer);
                    var flush = await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
                    if (flush.IsCompleted || flush.IsCanceled)
                    {
                        throw new OperationCanceledException(cancellationToken);
                    }

                    // After every choice finished, only the usage chunk is missing: wait briefly, not a full idle timeout.
                    idle.Restart(stream.Finished >= expectedChoices ? options.FinishGrace : idleTimeout);
                    if (!await events.FillAsync(idle.Token).ConfigureAwait(false))
                    {
                        return stream.Finished >= expectedChoices
                            ? null
                            : StreamError("The upstream closed the stream before the answer was complete.", "stream_truncated");
                    }
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return stream.Finished >= expectedChoices
                ? null
                : StreamError($"The upstream sent nothing for {Durations.Format(idleTimeout)}; the answer is incomplete.", "stream_idle_timeout");
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or InvalidDataException)
        {
            return StreamError("The upstream connection broke mid-stream; the answer is incomplete.", "stream_interrupted");
        }
        finally
        {
            // Whatever ends the pump, the events already taken reach the client before the stream's end or error.
            batch.Commit(writer);
        }
    }

    // Relays a named-event stream (Anthropic Messages, Responses) byte for byte until its terminal event
    // (null) or a break (the error to report). The outcome's reader starts on its first event.
    private async ValueTask<ApiError?> PumpNamedAsync(
        PipeWriter writer, AttemptOutcome outcome, NamedEventInspector inspector, StreamProgress stream, IPassThroughObserver? observer, RawTextCollector? text,
        IdleWatchdog idle, TimeSpan idleTimeout, CancellationToken cancellationToken)
    {
        var events = outcome.Events!;
        try
        {
            while (true)
            {
                if (!inspector.TryInspect(events.EventName, events.Data, out var facts))
                {
                    return StreamError("The upstream sent a malformed event; the answer is incomplete.", "bad_upstream_response");
                }

                if (facts.IsError)
                {
                    return StreamError("The upstream reported an error mid-stream; the answer is incomplete.", "upstream_error");
                }

                stream.Observe(facts);
                observer?.Observe(events.EventName, events.Data, text);
                if (!events.EventName.IsEmpty)
                {
                    writer.Write("event: "u8);
                    writer.Write(events.EventName);
                    writer.Write("\n"u8);
                }

                writer.Write(DataPrefix);
                writer.Write(events.Data);
                writer.Write(EventEnd);
                if (facts.IsTerminal)
                {
                    return null;
                }

                while (!events.TryReadEvent())
                {
                    var flush = await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
                    if (flush.IsCompleted || flush.IsCanceled)
                    {
                        throw new OperationCanceledException(cancellationToken);
                    }

                    idle.Restart(stream.Finished >= 1 ? options.FinishGrace : idleTimeout);
                    if (!await events.FillAsync(idle.Token).ConfigureAwait(false))
                    {
                        return stream.Finished >= 1
                            ? null
                            : StreamError("The upstream closed the stream before the answer was complete.", "stream_truncated");
                    }
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return stream.Finished >= 1
                ? null
                : StreamError($"The upstream sent nothing for {Durations.Format(idleTimeout)}; the answer is incomplete.", "stream_idle_timeout");
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or InvalidDataException)
        {
            return StreamError("The upstream connection broke mid-stream; the answer is incomplete.", "stream_interrupted");
        }
    }

    // A translated stream keeps the client's identity across attempts: a continuation of a pass-through
    // OpenAI stream writes its chunks under the id and model the client has already seen.
    private IStreamEncoder CreateEncoder(GatewayRequest request, AttemptOutcome outcome, StreamProgress stream)
    {
        var encoder = request.Protocol.CreateEncoder(request, outcome.Deployment!.UpstreamModel, timeProvider.GetUtcNow().ToUnixTimeSeconds());
        if (encoder is OpenAIStreamEncoder openAI)
        {
            if (stream.FirstId.Length > 0)
            {
                openAI.Id = JsonLiteral.Decode(stream.FirstId);
            }

            if (stream.FirstModel.Length > 0)
            {
                openAI.Model = JsonLiteral.Decode(stream.FirstModel);
            }
        }

        return encoder;
    }

    // Relays canonical events from the provider's decoder through the client's encoder until the
    // stream ends well (null) or breaks (the error to report).
    private async ValueTask<ApiError?> PumpDecodedAsync(
        PipeWriter writer, AttemptOutcome outcome, IStreamEncoder encoder, StreamProgress stream, RawTextCollector? text,
        IdleWatchdog idle, TimeSpan idleTimeout, CancellationToken cancellationToken)
    {
        var decoder = outcome.Decoder!;
        try
        {
            // What the attempt read while waiting for its first byte goes out first.
            foreach (var first in outcome.FirstEvents)
            {
                if (Relay(first, writer, encoder, stream, text) is { } failure)
                {
                    return failure;
                }
            }

            while (true)
            {
                while (decoder.TryRead(out var e))
                {
                    if (Relay(e, writer, encoder, stream, text) is { } failure)
                    {
                        return failure;
                    }
                }

                if (decoder.IsComplete || (stream.Finished >= 1 && stream.UsageSeen))
                {
                    return stream.Finished >= 1
                        ? null
                        : StreamError("The upstream ended the stream before the answer was complete.", "stream_truncated");
                }

                var flush = await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    throw new OperationCanceledException(cancellationToken);
                }

                // After the finish, only the usage is missing: wait briefly, not a full idle timeout.
                idle.Restart(stream.Finished >= 1 ? options.FinishGrace : idleTimeout);
                if (!await decoder.FillAsync(idle.Token).ConfigureAwait(false))
                {
                    return stream.Finished >= 1
                        ? null
                        : StreamError("The upstream closed the stream before the answer was complete.", "stream_truncated");
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return stream.Finished >= 1
                ? null
                : StreamError($"The upstream sent nothing for {Durations.Format(idleTimeout)}; the answer is incomplete.", "stream_idle_timeout");
        }
        catch (InvalidDataException)
        {
            return StreamError("The upstream sent a malformed event; the answer is incomplete.", "bad_upstream_response");
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            return StreamError("The upstream connection broke mid-stream; the answer is incomplete.", "stream_interrupted");
        }
    }

    private static ApiError? Relay(in StreamEvent e, PipeWriter writer, IStreamEncoder encoder, StreamProgress stream, RawTextCollector? text)
    {
        if (e.Kind == StreamEventKind.Error)
        {
            return StreamError("The upstream reported an error mid-stream; the answer is incomplete.", "upstream_error");
        }

        if (e.Kind == StreamEventKind.TextDelta && stream.SkipLeadingWhitespace)
        {
            var trimmed = System.Text.Unicode.Utf8.IsValid(e.Utf8.Span) ? TrimLeadingWhitespace(e.Utf8) : e.Utf8;
            if (trimmed.IsEmpty)
            {
                return null;
            }

            stream.SkipLeadingWhitespace = false;
            var copy = e;
            copy.Utf8 = trimmed;
            return Relay(copy, writer, encoder, stream, text);
        }

        stream.Observe(e);
        if (e.Kind == StreamEventKind.TextDelta)
        {
            stream.SkipLeadingWhitespace = false;
            text?.AppendText(e.Utf8.Span);
        }

        if (e.Kind == StreamEventKind.Usage && stream.Continued)
        {
            // A continued stream reads as one answer: the prompt once, and every token the client received.
            var whole = e;
            whole.Usage = stream.WholeAnswer(e.Usage);
            encoder.Write(whole, writer);
            return null;
        }

        encoder.Write(e, writer);
        return null;
    }

    private static ReadOnlyMemory<byte> TrimLeadingWhitespace(ReadOnlyMemory<byte> utf8)
    {
        var span = utf8.Span;
        var start = 0;
        while (start < span.Length && span[start] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
        {
            start++;
        }

        return utf8[start..];
    }

    private static void WriteEvent(PipeWriter writer, ref EventBatch batch, ReadOnlySpan<byte> data, in ResponseFacts facts, StreamProgress stream)
    {
        if (!stream.Continued)
        {
            batch.Append(writer, DataPrefix, data, EventEnd);
            return;
        }

        batch.Commit(writer);

        // A continuation keeps the first stream's id and model, and its usage covers the whole answer,
        // so the client sees one completion. At most three edits, written in the order they appear.
        writer.Write(DataPrefix);
        Span<(int Start, int Length, int Which)> edits = stackalloc (int, int, int)[3];
        var count = 0;
        if (facts.IdLength > 0 && stream.FirstId.Length > 0)
        {
            edits[count++] = (facts.IdStart, facts.IdLength, 0);
        }

        if (facts.ModelLength > 0 && stream.FirstModel.Length > 0)
        {
            edits[count++] = (facts.ModelStart, facts.ModelLength, 1);
        }

        if (facts.HasUsage && facts.UsageLength > 0)
        {
            edits[count++] = (facts.UsageStart, facts.UsageLength, 2);
        }

        edits[..count].Sort(static (a, b) => a.Start.CompareTo(b.Start));
        var position = 0;
        foreach (var (start, length, which) in edits[..count])
        {
            writer.Write(data[position..start]);
            switch (which)
            {
                case 0:
                    writer.Write(stream.FirstId);
                    break;
                case 1:
                    writer.Write(stream.FirstModel);
                    break;
                default:
                    WriteUsageObject(writer, stream.WholeAnswer(facts.Usage));
                    break;
            }

            position = start + length;
        }

        writer.Write(data[position..]);
        writer.Write(EventEnd);
    }

    // OpenAI's usage object, as the value spliced into a continued stream's usage chunk.
    private static void WriteUsageObject(PipeWriter writer, in TokenUsage usage)
    {
        using var json = new Utf8JsonWriter(writer, JsonOutput.Options);
        json.WriteStartObject();
        json.WriteNumber("prompt_tokens"u8, usage.Input);
        json.WriteNumber("completion_tokens"u8, usage.Output);
        json.WriteNumber("total_tokens"u8, usage.Input + usage.Output);
        json.WriteStartObject("prompt_tokens_details"u8);
        json.WriteNumber("cached_tokens"u8, usage.CacheRead);
        json.WriteEndObject();
        json.WriteStartObject("completion_tokens_details"u8);
        json.WriteNumber("reasoning_tokens"u8, usage.Reasoning);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>
    /// Ends a started stream as failed: an SSE event carrying an OpenAI error (SDKs raise it), then an
    /// abort, so the response cannot look complete to any client. The pause lets the server's socket
    /// writer send what was flushed; aborting at once would throw the error event away.
    /// </summary>
    public static async Task FailStreamAsync(HttpContext context, ApiError error, TimeProvider timeProvider, GatewayOptions options, IStreamEncoder? encoder = null, ClientProtocol? protocol = null)
    {
        if (!context.RequestAborted.IsCancellationRequested)
        {
            var writer = context.Response.BodyWriter;
            if (encoder is not null)
            {
                encoder.Fail(error, writer);
            }
            else if (protocol is not null)
            {
                // A pass-through stream (or one only keep-alives started) ends in the client's own error event.
                protocol.WriteStreamError(error, writer);
            }
            else
            {
                writer.Write(DataPrefix);
                error.WriteJson(writer);
                writer.Write(EventEnd);
            }

            await writer.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            await Task.Delay(options.StreamAbortGrace, timeProvider, CancellationToken.None).ConfigureAwait(false);
        }

        context.Abort();
    }

    private static ApiError StreamError(string message, string code) => new(502, message, "server_error", code);

    private TokenUsage EstimateUsage(GatewayRequest request, Deployment deployment, long outputBytes, RawTextCollector? text)
        => new()
        {
            Input = request.Decision?.EstimatedInputTokens ?? TokenEstimator.Estimate(request.Info),
            Output = text is { Length: > 0 } ? tokens.CountText(text.ToText(), deployment.Tokenizer) : (outputBytes + 3) / 4,
            Reported = false,
        };

    /// <summary>What a stream has delivered so far, across continuations.</summary>
    private sealed class StreamProgress(GatewayRequest request, Deployment deployment)
    {
        private TokenUsage _reported;
        private long _outputBytes;
        private bool _accounted;
        private bool _anyCounted;

        public GatewayRequest Request { get; } = request;

        /// <summary>Whether the first attempt's id and model must be kept, for a continuation to write under them.</summary>
        public bool KeepsIdentity { get; init; }
        public Deployment Deployment { get; private set; } = deployment;
        public int Events { get; private set; }
        public int Finished { get; private set; }
        public bool UsageSeen { get; private set; }
        public bool SawToolCalls { get; private set; }

        /// <summary>Set for a translated continuation whose prefill ended in whitespace the provider had trimmed.</summary>
        public bool SkipLeadingWhitespace { get; set; }
        public FinishReason FinishReason { get; private set; }

        /// <summary>The first attempt's completion id and model as JSON string literals, kept by every continuation.</summary>
        public byte[] FirstId { get; private set; } = [];
        public byte[] FirstModel { get; private set; } = [];
        public TokenUsage Usage;

        /// <summary>True once another deployment continues the stream: its chunks are rewritten to read as the first's.</summary>
        public bool Continued { get; private set; }

        // For a continued stream: the prompt as the first attempt had it, the tokens the client received
        // from the attempts that broke, and where in the collected text the current attempt's part starts.
        private TokenUsage _prompt;
        private long _outputBefore;
        private int _textMark;

        public void Observe(ReadOnlySpan<byte> data, in ResponseFacts facts)
        {
            Events++;
            if (FirstId.Length == 0 && facts.IdLength > 0)
            {
                FirstId = data.Slice(facts.IdStart, facts.IdLength).ToArray();
            }

            if (FirstModel.Length == 0 && facts.ModelLength > 0)
            {
                FirstModel = data.Slice(facts.ModelStart, facts.ModelLength).ToArray();
            }

            Finished += facts.FinishedChoices;
            if (facts.FinishReason != Canonical.FinishReason.None)
            {
                FinishReason = facts.FinishReason;
            }

            SawToolCalls |= facts.HasToolCalls;
            _outputBytes += facts.OutputTextBytes;
            if (facts.HasUsage)
            {
                UsageSeen = true;
                _reported = facts.Usage;
            }
        }

        /// <summary>True once a named-event stream's terminal event went out.</summary>
        public bool TerminalSeen { get; private set; }

        /// <summary>Tracks a pass-through named-event stream.</summary>
        public void Observe(in NamedEventFacts facts)
        {
            Events++;
            _outputBytes += facts.OutputBytes;
            SawToolCalls |= facts.StartsToolCall;
            TerminalSeen |= facts.IsTerminal;
            if (facts.Finish != Canonical.FinishReason.None)
            {
                Finished = 1;
                FinishReason = facts.Finish;
            }

            if (facts.HasUsage)
            {
                // Named streams report usage in parts (Anthropic: input at the start, output at the end): merge.
                UsageSeen = true;
                _reported = Merge(_reported, facts.Usage);
            }
        }

        private static TokenUsage Merge(TokenUsage earlier, in TokenUsage later) => new()
        {
            Input = later.Input > 0 ? later.Input : earlier.Input,
            CacheRead = later.CacheRead > 0 ? later.CacheRead : earlier.CacheRead,
            CacheWrite = later.CacheWrite > 0 ? later.CacheWrite : earlier.CacheWrite,
            Output = later.Output > 0 ? later.Output : earlier.Output,
            Reasoning = later.Reasoning > 0 ? later.Reasoning : earlier.Reasoning,
            Reported = true,
        };

        /// <summary>Tracks a translated stream's canonical events.</summary>
        public void Observe(in StreamEvent e)
        {
            switch (e.Kind)
            {
                case StreamEventKind.TextDelta or StreamEventKind.ReasoningDelta or StreamEventKind.ToolCallDelta:
                    Events++;
                    _outputBytes += e.Utf8.Length;
                    break;
                case StreamEventKind.ToolCallStart:
                    Events++;
                    SawToolCalls = true;
                    break;
                case StreamEventKind.Finish:
                    Events++;
                    Finished++;
                    FinishReason = e.Finish;
                    break;
                case StreamEventKind.Usage:
                    UsageSeen = true;
                    _reported = e.Usage;
                    break;
            }
        }

        /// <summary>A translated attempt's identity (what its encoder wrote), for continuations to keep.</summary>
        public void RememberIdentity(IStreamEncoder encoder)
        {
            if (encoder is OpenAIStreamEncoder openAI)
            {
                if (FirstId.Length == 0 && openAI.Id is { } id)
                {
                    FirstId = JsonLiteral.Encode(id);
                }

                if (FirstModel.Length == 0)
                {
                    FirstModel = JsonLiteral.Encode(openAI.Model);
                }
            }
        }

        /// <summary>
        /// The attempt broke and another continues it: counts what the client received from it (its own
        /// usage, if any arrived, covers less than that or a prompt with no prefill) and keeps the prompt.
        /// </summary>
        public void Break(RawTextCollector text, TokenEstimator tokens)
        {
            if (!Continued)
            {
                Continued = true;
                _prompt = UsageSeen && _reported.Input > 0
                    ? new TokenUsage { Input = _reported.Input, CacheRead = _reported.CacheRead, CacheWrite = _reported.CacheWrite }
                    : new TokenUsage { Input = Request.Decision?.EstimatedInputTokens ?? TokenEstimator.Estimate(Request.Info) };
            }

            _outputBefore += text.Length > _textMark ? tokens.CountText(text.ToText(_textMark), Deployment.Tokenizer) : 0;
            _textMark = text.Length;
        }

        /// <summary>A continued stream's usage as one answer: the prompt once, the completion tokens of every part.</summary>
        public TokenUsage WholeAnswer(in TokenUsage current) => new()
        {
            Input = _prompt.Input,
            CacheRead = _prompt.CacheRead,
            CacheWrite = _prompt.CacheWrite,
            Output = _outputBefore + current.Output,
            Reasoning = current.Reasoning,
            Reported = false,
        };

        /// <summary>Adds this attempt's tokens to the request's usage: reported if the upstream said, counted if not.</summary>
        public void Account(AttemptOutcome outcome, RawTextCollector? text, TokenEstimator tokens)
        {
            if (_accounted)
            {
                return;
            }

            _accounted = true;
            if (Continued)
            {
                var output = UsageSeen ? _reported.Output
                    : text is not null && text.Length > _textMark ? tokens.CountText(text.ToText(_textMark), Deployment.Tokenizer) : (_outputBytes + 3) / 4;
                Usage = WholeAnswer(new TokenUsage { Output = output, Reasoning = UsageSeen ? _reported.Reasoning : 0 });
                return;
            }

            TokenUsage part;
            if (UsageSeen)
            {
                part = _reported;
            }
            else
            {
                _anyCounted = true;
                part = new TokenUsage
                {
                    Input = Request.Decision?.EstimatedInputTokens ?? TokenEstimator.Estimate(Request.Info),
                    Output = text is { Length: > 0 } ? tokens.CountText(text.ToText(), outcome.Deployment!.Tokenizer) : (_outputBytes + 3) / 4,
                };
            }

            Usage.Add(part);
            Usage.Reported = !_anyCounted;
        }

        public void SwitchTo(Deployment deployment)
        {
            Deployment = deployment;
            Finished = 0;
            UsageSeen = false;
            _outputBytes = 0;
            _accounted = false;
            _reported = default;
        }
    }

    /// <summary>
    /// Keeps the text a stream has produced as raw JSON-escaped bytes: pieces of escaped JSON strings
    /// concatenate into an escaped JSON string, so a continuation prefill needs no re-encoding.
    /// </summary>
    private sealed class RawTextCollector : IContentSink
    {
        private readonly ArrayBufferWriter<byte> _raw = new(1024);

        public int Length => _raw.WrittenCount;

        /// <summary>Whether the text so far ends in a space or line break (escaped in the raw JSON form).</summary>
        public bool EndsWithWhitespace
        {
            get
            {
                var raw = _raw.WrittenSpan;
                return raw.EndsWith(" "u8) || raw.EndsWith("\\n"u8) || raw.EndsWith("\\t"u8) || raw.EndsWith("\\r"u8);
            }
        }

        public void Append(ref Utf8JsonReader reader)
        {
            if (!reader.HasValueSequence)
            {
                _raw.Write(reader.ValueSpan);
            }
        }

        /// <summary>Appends unescaped UTF-8 text (a translated stream's delta), escaping it as JSON.</summary>
        public void AppendText(ReadOnlySpan<byte> utf8)
        {
            while (!utf8.IsEmpty)
            {
                var destination = _raw.GetSpan(Math.Max(64, utf8.Length * 2));
                var status = JavaScriptEncoder.UnsafeRelaxedJsonEscaping.EncodeUtf8(utf8, destination, out var consumed, out var written);
                _raw.Advance(written);
                utf8 = utf8[consumed..];
                if (status == OperationStatus.InvalidData)
                {
                    // A broken UTF-8 sequence is dropped rather than corrupting the prefill's JSON.
                    utf8 = utf8.Length > 0 ? utf8[1..] : utf8;
                }
            }
        }

        public byte[] ToJsonLiteral()
        {
            var literal = new byte[_raw.WrittenCount + 2];
            literal[0] = (byte)'"';
            _raw.WrittenSpan.CopyTo(literal.AsSpan(1));
            literal[^1] = (byte)'"';
            return literal;
        }

        public string ToText() => ToText(0);

        /// <summary>The text from <paramref name="start"/> (a <see cref="Length"/> seen earlier) on.</summary>
        public string ToText(int start)
        {
            var raw = _raw.WrittenSpan[start..];
            var literal = new byte[raw.Length + 2];
            literal[0] = (byte)'"';
            raw.CopyTo(literal.AsSpan(1));
            literal[^1] = (byte)'"';
            var reader = new Utf8JsonReader(literal);
            reader.Read();
            return reader.GetString() ?? string.Empty;
        }
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Request {RequestId}: stream from {Deployment} broke after {Events} events: {Reason}")]
    private static partial void LogStreamBroken(ILogger logger, string requestId, string deployment, int events, string reason);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Information, Message = "Request {RequestId}: continuing the broken stream of {Broken} on {Deployment} from the text already sent")]
    private static partial void LogContinued(ILogger logger, string requestId, string broken, string deployment);
}
