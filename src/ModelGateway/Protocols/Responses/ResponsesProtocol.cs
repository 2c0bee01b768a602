using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Forwarding;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Providers;
using ModelGateway.Resilience;
using ModelGateway.State;
using ModelGateway.State.Responses;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Responses;

/// <summary>
/// OpenAI's Responses API (<c>POST /v1/responses</c>) as clients speak it: passed through byte for
/// byte to OpenAI and Azure OpenAI deployments, translated for every other kind. A translated answer
/// is stored (unless <c>store</c> is false) for <c>previous_response_id</c> follow-ups and
/// <c>GET</c>/<c>DELETE</c>; a pass-through one is remembered by the deployment that holds it, so its
/// follow-ups go back there.
/// </summary>
internal sealed partial class ResponsesProtocol(IResponseStore store, ILogger<ResponsesProtocol> logger) : ClientProtocol
{
    public override WireFormat Wire => WireFormat.OpenAIResponses;

    public override string Api => "responses";

    public override NamedEventInspector NamedEvents => ResponsesInspector.Instance;

    /// <summary>
    /// A pass-through stream carries OpenAI's response id, item ids and sequence numbers, which the gateway's
    /// encoder does not take over mid-way: a broken one ends in an error event instead of a continuation.
    /// </summary>
    public override bool ContinuesPassThrough => false;

    /// <summary>The store's partition for a caller: the key's id, so no key can reach another's responses.</summary>
    public static string Scope(CallerIdentity caller) => caller.KeyId ?? "anonymous";

    public static ResponsesExchange Exchange(GatewayRequest request)
        => request.ProtocolState as ResponsesExchange ?? (ResponsesExchange)(request.ProtocolState = ResponsesExchange.Read(request.Body));

    public override bool TryParse(ReadOnlySpan<byte> body, Operation operation, int maxDepth, out RequestInfo info, out RequestProblem problem)
        => ResponsesRequestParser.TryParse(body, maxDepth, out info, out problem);

    public override bool TryInspectBody(ReadOnlySpan<byte> body, out ResponseFacts facts) => ResponsesInspector.TryInspectBody(body, out facts);

    public override async ValueTask<ApiError?> PrepareAsync(GatewayRequest request, CancellationToken cancellationToken)
    {
        var exchange = Exchange(request);
        if (exchange.PreviousResponseId is not { } previousId)
        {
            return null;
        }

        StoredResponse? previous;
        try
        {
            previous = await store.GetAsync(Scope(request.Caller), previousId, cancellationToken).ConfigureAwait(false);
        }
        catch (ResponseStoreUnavailableException)
        {
            return ApiError.Unavailable("The response store is unreachable, so previous_response_id cannot be read; try again shortly.", "response_store_unavailable", TimeSpan.FromSeconds(1));
        }

        if (previous is null)
        {
            // Not the gateway's: an id OpenAI made (for a pass-through deployment to resolve), or unknown.
            return AnyPassThrough(request) ? null : PreviousNotFound(previousId);
        }

        if (previous.Kind == StoredResponseKind.PassThrough)
        {
            // Its state lives in that deployment's provider account: only it can continue it.
            if (!ServesDeployment(request, previous.Deployment))
            {
                return ApiError.BadRequest(
                    $"Previous response with id '{previousId}' was made by deployment '{previous.Deployment}', which the model '{request.Route!.Name}' no longer routes to.",
                    "previous_response_not_found",
                    "previous_response_id");
            }

            request.PinnedDeployment = previous.Deployment;
            return null;
        }

        exchange.Previous = previous;
        return null;
    }

    public override ChatRequest ReadCanonical(GatewayRequest request)
    {
        var exchange = Exchange(request);
        if (exchange.PreviousResponseId is { } id && exchange.Previous is null)
        {
            throw new InvalidOperationException($"Previous response with id '{id}' is not one the gateway stored, and only the OpenAI deployment that made it could continue it.");
        }

        try
        {
            return ResponsesRequestReader.Read(request.BodyMemory, exchange);
        }
        catch (ToolChoiceUnsupportedException ex)
        {
            throw new InvalidOperationException(ex.Message, ex);
        }
    }

    public override IStreamEncoder CreateEncoder(GatewayRequest request, string model, long created)
    {
        var exchange = Exchange(request);
        return exchange.Encoder ??= new ResponsesStreamEncoder(request, exchange, model, created);
    }

    public override void WriteResponse(GatewayRequest request, ChatResponse response, string model, long created, IBufferWriter<byte> output)
    {
        var exchange = Exchange(request);
        var encoder = exchange.Encoder ??= new ResponsesStreamEncoder(request, exchange, model, created);
        var events = new ArrayBufferWriter<byte>(1024);
        foreach (var e in response.ToEvents())
        {
            encoder.Write(e, events);
        }

        encoder.Complete(events);
        output.Write(encoder.FinalResponse);
    }

    public override void WriteStreamError(ApiError error, IBufferWriter<byte> output)
    {
        // OpenAI's stream error event; a pass-through stream's sequence numbers are the upstream's, so none is claimed.
        output.Write("event: error\ndata: "u8);
        using var json = new Utf8JsonWriter(output, JsonOutput.Options);
        json.WriteStartObject();
        json.WriteString("type"u8, "error"u8);
        json.WriteString("code"u8, error.Code ?? error.Type);
        json.WriteString("message"u8, error.Message);
        json.WriteNull("param"u8);
        json.WriteEndObject();
        json.Flush();
        output.Write("\n\n"u8);
    }

    public override SplicedBody PassThroughBody(UpstreamRequest call) => ResponsesPassThrough.Body(call, Exchange(call.Request));

    public override async ValueTask AnswerCompletingAsync(GatewayRequest request, AttemptOutcome outcome, CancellationToken cancellationToken)
    {
        var exchange = Exchange(request);
        if (!exchange.Store || outcome.Deployment is not { } deployment)
        {
            return;
        }

        StoredResponse? stored;
        if (outcome.IsTranslated && Translated(request, exchange, deployment.Name) is { } translated)
        {
            stored = translated;
        }
        else if (PassThroughId(outcome) is { } upstreamId)
        {
            exchange.ResponseId = upstreamId;
            stored = new StoredResponse { Id = upstreamId, Kind = StoredResponseKind.PassThrough, Deployment = deployment.Name };
        }
        else
        {
            return;
        }

        await SaveAsync(request, stored, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A cache hit was written with this request's own fresh <c>resp_</c> id, which no provider ever saw: the
    /// gateway stores it as its own (translated) response, so a <c>previous_response_id</c> naming it continues
    /// from the replayed answer on whichever deployment serves the follow-up.
    /// </summary>
    public override async ValueTask AnswerReplayedAsync(GatewayRequest request, string deployment, CancellationToken cancellationToken)
    {
        var exchange = Exchange(request);
        if (exchange.Store && Translated(request, exchange, deployment) is { } stored)
        {
            await SaveAsync(request, stored, cancellationToken).ConfigureAwait(false);
        }
    }

    // The answer the gateway's encoder wrote, as the store keeps it; null before the encoder finished.
    private static StoredResponse? Translated(GatewayRequest request, ResponsesExchange exchange, string deployment)
        => exchange.Encoder is { FinalResponse: { } response } encoder
            ? new StoredResponse
            {
                Id = exchange.ResponseId,
                Kind = StoredResponseKind.Translated,
                Deployment = deployment,
                Context = ResponsesPassThrough.Context(request, exchange, encoder.StoredItems),
                Response = response,
            }
            : null;

    private async ValueTask SaveAsync(GatewayRequest request, StoredResponse stored, CancellationToken cancellationToken)
    {
        try
        {
            await store.SaveAsync(Scope(request.Caller), stored, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ResponseStoreUnavailableException or TimeoutException)
        {
            // The answer still goes out; only a follow-up naming it will find nothing.
            LogStoreFailed(logger, request.RequestId, stored.Id, ex.Message);
        }
    }

    // The id OpenAI gave a pass-through answer: in its terminal event, or in the whole body.
    private static string? PassThroughId(AttemptOutcome outcome)
    {
        ReadOnlySpan<byte> json;
        if (outcome.Events is { } events)
        {
            if (!events.EventName.SequenceEqual("response.completed"u8) && !events.EventName.SequenceEqual("response.incomplete"u8))
            {
                return null;
            }

            json = events.Data;
            var reader = new Utf8JsonReader(json);
            reader.Read();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("response"u8))
                {
                    reader.Read();
                    return ResponsesInspector.TryInspectBody(json[(int)reader.TokenStartIndex..], out var facts) && facts.IdLength > 2
                        ? JsonLiteral.Decode(json.Slice((int)reader.TokenStartIndex + facts.IdStart, facts.IdLength))
                        : null;
                }

                reader.Read();
                reader.Skip();
            }

            return null;
        }

        json = outcome.Body.Span;
        return !json.IsEmpty && ResponsesInspector.TryInspectBody(json, out var body) && body.IdLength > 2
            ? JsonLiteral.Decode(json.Slice(body.IdStart, body.IdLength))
            : null;
    }

    private static bool AnyPassThrough(GatewayRequest request)
    {
        var route = request.Route!;
        var targets = route.IsAuto ? request.Catalog.DeploymentList : route.Targets;
        foreach (var deployment in targets)
        {
            if (deployment.Provider.Adapter.PassesThrough(WireFormat.OpenAIResponses))
            {
                return true;
            }
        }

        return false;
    }

    private static bool ServesDeployment(GatewayRequest request, string name)
    {
        var route = request.Route!;
        var targets = route.IsAuto ? request.Catalog.DeploymentList : route.Targets;
        foreach (var deployment in targets)
        {
            if (deployment.Name == name)
            {
                return true;
            }
        }

        return false;
    }

    public static ApiError PreviousNotFound(string id)
        => new(400, $"Previous response with id '{id}' not found.", "invalid_request_error", "previous_response_not_found", "previous_response_id");

    [LoggerMessage(EventId = 2301, Level = LogLevel.Warning, Message = "Request {RequestId}: response {ResponseId} could not be stored ({Reason}); a follow-up naming it will not find it")]
    private static partial void LogStoreFailed(ILogger logger, string requestId, string responseId, string reason);
}
