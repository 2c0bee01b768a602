using System.Buffers;
using ModelGateway.Canonical;
using ModelGateway.Forwarding;
using ModelGateway.Providers;
using ModelGateway.Resilience;
using ModelGateway.Wire;

namespace ModelGateway.Protocols;

/// <summary>
/// One client API the gateway serves (OpenAI chat completions, Anthropic Messages, OpenAI
/// Responses): how its requests are read into neutral facts and, for deployments speaking another
/// wire, into the canonical request; and how canonical answers, stream events and errors are written
/// back in its own wire.
/// </summary>
internal abstract class ClientProtocol
{
    /// <summary>The wire its clients speak; a deployment speaking the same one is served byte for byte.</summary>
    public abstract WireFormat Wire { get; }

    /// <summary>The <c>api</c> label of metrics and the access log.</summary>
    public abstract string Api { get; }

    /// <summary>Reads the body into the facts routing, limits and forwarding need, validating it as the API does.</summary>
    public abstract bool TryParse(ReadOnlySpan<byte> body, Operation operation, int maxDepth, out RequestInfo info, out RequestProblem problem);

    /// <summary>The canonical request, for deployments that speak another wire.</summary>
    public abstract ChatRequest ReadCanonical(GatewayRequest request);

    /// <summary>A stream encoder for one client stream.</summary>
    public abstract IStreamEncoder CreateEncoder(GatewayRequest request, string model, long created);

    /// <summary>Writes a whole canonical answer as this API's non-streamed body.</summary>
    public abstract void WriteResponse(GatewayRequest request, ChatResponse response, string model, long created, IBufferWriter<byte> output);

    /// <summary>
    /// For protocols whose streams name their events: what the pass-through relay reads them with.
    /// Null for OpenAI chat, whose <c>data:</c>-only chunks the relay reads with its own tuned loop.
    /// </summary>
    public virtual NamedEventInspector? NamedEvents => null;

    /// <summary>What a whole pass-through body says (usage, finish, an error object); false when it is not this wire.</summary>
    public virtual bool TryInspectBody(ReadOnlySpan<byte> body, out Protocols.OpenAI.ResponseFacts facts)
        => Protocols.OpenAI.ResponseInspector.TryInspect(body, out facts);

    /// <summary>Writes an error as this API's whole response (status, headers, body).</summary>
    public virtual Task WriteErrorAsync(HttpContext context, ApiError error) => error.WriteAsync(context);

    /// <summary>The embeddings request, for deployments that speak another embeddings wire; only APIs with embeddings have one.</summary>
    public virtual EmbeddingRequest ReadEmbeddings(GatewayRequest request)
        => throw new InvalidOperationException($"{Api} has no embeddings operation.");

    /// <summary>Writes a translated embeddings answer as this API's body.</summary>
    public virtual void WriteEmbeddings(GatewayRequest request, EmbeddingResponse response, string model, IBufferWriter<byte> output)
        => throw new InvalidOperationException($"{Api} has no embeddings operation.");

    /// <summary>The in-band event that tells a client its stream broke.</summary>
    public virtual void WriteStreamError(ApiError error, IBufferWriter<byte> output)
    {
        output.Write("data: "u8);
        error.WriteJson(output);
        output.Write("\n\n"u8);
    }

    /// <summary>
    /// Runs once a request is parsed, its route resolved and its key allowed, before routing: the place
    /// for what needs I/O (loading stored state the request refers to) or pins the request to one
    /// deployment (<see cref="GatewayRequest.PinnedDeployment"/>). Returns the error to answer with, or null.
    /// </summary>
    public virtual ValueTask<ApiError?> PrepareAsync(GatewayRequest request, CancellationToken cancellationToken) => default;

    /// <summary>
    /// Runs when a whole answer has been written but before its last bytes are flushed to the client,
    /// so that state a follow-up request needs (a stored response) exists before the client can send one.
    /// </summary>
    public virtual ValueTask AnswerCompletingAsync(GatewayRequest request, AttemptOutcome outcome, CancellationToken cancellationToken) => default;

    /// <summary>
    /// Runs when an answer from the response cache (an entry, or a stream it followed) has been written in this
    /// API but before its last bytes are flushed, as <see cref="AnswerCompletingAsync"/> does for a fetched one:
    /// state a follow-up needs exists for the fresh answer too. <paramref name="deployment"/> made the answer.
    /// </summary>
    public virtual ValueTask AnswerReplayedAsync(GatewayRequest request, string deployment, CancellationToken cancellationToken) => default;

    /// <summary>The body a pass-through attempt sends to a deployment that speaks this protocol's OpenAI wire.</summary>
    public virtual SplicedBody PassThroughBody(UpstreamRequest call) => UpstreamBody.ForOpenAI(call);

    /// <summary>
    /// Whether a pass-through stream that breaks can be continued by a translated attempt: its encoder can
    /// take over from the events the client already has (<see cref="IPassThroughObserver"/> for named events).
    /// </summary>
    public virtual bool ContinuesPassThrough => true;
}
