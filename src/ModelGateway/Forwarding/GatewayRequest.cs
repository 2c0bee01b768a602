using System.Buffers;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Protocols;
using ModelGateway.Resilience;
using ModelGateway.Routing;
using ModelGateway.State;
using ModelGateway.Wire;

namespace ModelGateway.Forwarding;

/// <summary>
/// Everything one client request carries through the gateway: its buffered body, what the body
/// asks for, the routing decision, and the outcome that logs, metrics and usage are made from.
/// One object per request, so the hot path allocates once for its bookkeeping.
/// </summary>
internal sealed class GatewayRequest : IDisposable
{
    private byte[] _body = [];
    private int _bodyLength;
    private readonly int[] _exactTokens = [-1, -1, -1, -1];

    public GatewayRequest(HttpContext httpContext, ClientProtocol protocol, Operation operation, string requestId, long startTimestamp)
    {
        HttpContext = httpContext;
        Protocol = protocol;
        Operation = operation;
        RequestId = requestId;
        StartTimestamp = startTimestamp;
    }

    public HttpContext HttpContext { get; }

    /// <summary>The client API the request came through: how it is parsed, and how answers and errors are written.</summary>
    public ClientProtocol Protocol { get; }

    public Operation Operation { get; }
    public string RequestId { get; }
    public long StartTimestamp { get; }

    public RequestInfo Info;

    public ReadOnlySpan<byte> Body => _body.AsSpan(0, _bodyLength);
    public ReadOnlyMemory<byte> BodyMemory => _body.AsMemory(0, _bodyLength);

    /// <summary>The request in no provider's wire, built once and only when a deployment that speaks another wire may serve it.</summary>
    public ChatRequest Canonical => _canonical ??= Protocol.ReadCanonical(this);

    private ChatRequest? _canonical;

    /// <summary>The canonical request if a translated attempt built it, without building it.</summary>
    public ChatRequest? CanonicalIfBuilt => _canonical;

    /// <summary>The embeddings request in no provider's wire, built only when a deployment that translates embeddings may serve it.</summary>
    public EmbeddingRequest Embeddings => _embeddings ??= Protocol.ReadEmbeddings(this);

    private EmbeddingRequest? _embeddings;

    public GatewayCatalog Catalog { get; set; } = null!;
    public ModelRoute? Route { get; set; }
    public RoutingDecision? Decision { get; set; }
    public CallerIdentity Caller { get; set; } = CallerIdentity.Anonymous;
    public KeyAdmission? Admission { get; set; }

    /// <summary>The provider-limit reservation of the deployment that served, settled to real usage at the end.</summary>
    public DeploymentAdmission DeploymentAdmission { get; set; }

    /// <summary>The failover walk over the ranked candidates; continuation resumes it.</summary>
    public AttemptState? AttemptState { get; set; }

    /// <summary>Per-request latency objective from <c>x-modelgateway-slo-ttft</c>, when the caller may set one.</summary>
    public TimeSpan? SloOverride { get; set; }

    // Outcome, filled in as the request progresses.
    public Deployment? ServedBy { get; set; }

    /// <summary>The deployment of the latest attempt, served or not.</summary>
    public Deployment? LastAttempted { get; set; }
    public AttemptLog Attempts { get; } = new();
    public TokenUsage Usage;
    public double Cost { get; set; }
    public long FirstByteTimestamp { get; set; }

    /// <summary>From the serving attempt's start to its first byte (first event of a stream).</summary>
    public TimeSpan TimeToFirstToken { get; set; }
    public int StatusCode { get; set; }
    public string? ErrorCode { get; set; }
    public FinishReason FinishReason { get; set; }
    public bool StreamCompleted { get; set; }
    public bool Continued { get; set; }

    /// <summary>The answer's text, kept only when <c>Observability:CaptureContent</c> is on, for traces.</summary>
    public string? CapturedOutput { get; set; }

    /// <summary>What the client protocol keeps about this request between its hooks (stored history, ids); null for most protocols.</summary>
    public object? ProtocolState { get; set; }

    /// <summary>
    /// The only deployment that may serve this request, when the protocol says so: a follow-up of a
    /// response whose state lives on one provider account (a pass-through <c>previous_response_id</c>).
    /// </summary>
    public string? PinnedDeployment { get; set; }

    /// <summary>Prefix affinity: the prompt's prefixes, remembered for whichever deployment serves; null when the route has it off.</summary>
    public Routing.Affinity.AffinityTicket? Affinity { get; set; }

    /// <summary>Caching: the response cache's plan for this request; null when its route has no cache.</summary>
    public Caching.CachePlan? CachePlan { get; set; }

    public void SetBody(byte[] rented, int length)
    {
        _body = rented;
        _bodyLength = length;
    }

    /// <summary>An exact input count already computed for this tokenizer, or -1.</summary>
    public int GetExactTokens(TokenizerKind kind) => _exactTokens[(int)kind];

    public void SetExactTokens(TokenizerKind kind, int count) => _exactTokens[(int)kind] = count;

    public void Dispose()
    {
        var body = _body;
        _body = [];
        _bodyLength = 0;
        if (body.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(body);
        }
    }
}
