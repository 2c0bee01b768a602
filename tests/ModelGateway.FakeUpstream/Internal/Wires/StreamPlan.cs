namespace ModelGateway.FakeUpstream.Internal.Wires;

/// <summary>One framed event of a stream: SSE text or a binary event-stream message.</summary>
/// <param name="Bytes">The event exactly as it goes on the wire.</param>
/// <param name="IsPiece">A content delta: <c>ChunkDelay</c> comes before it and faults are placed by counting these.</param>
/// <param name="IsTerminator">The wire's end-of-stream marker, left out by <c>OmitDone</c> and <c>StallAfterFinish</c>.</param>
internal readonly record struct StreamItem(byte[] Bytes, bool IsPiece, bool IsTerminator);

/// <summary>
/// A whole streamed answer as framed events, built up front by a wire's formatter so that
/// <see cref="WireResponder"/> can apply timing and faults the same way on every wire.
/// </summary>
internal sealed class StreamPlan
{
    private readonly List<StreamItem> _items = [];

    public StreamPlan(string contentType) => ContentType = contentType;

    public string ContentType { get; }

    public IReadOnlyList<StreamItem> Items => _items;

    public int PieceCount { get; private set; }

    /// <summary>
    /// True when the finish travels on the last piece itself (Gemini), so a fault "after all pieces" goes
    /// before that piece instead.
    /// </summary>
    public bool FinishRidesOnLastPiece { get; init; }

    /// <summary>What <c>MalformedSseEvent</c> writes: an event that does not decode.</summary>
    public byte[] MalformedEvent { get; set; } = [];

    /// <summary>What <c>ErrorEvent</c> writes before ending the body.</summary>
    public byte[] ErrorEvent { get; set; } = [];

    public void Add(byte[] bytes) => _items.Add(new StreamItem(bytes, false, false));

    public void AddPiece(byte[] bytes, bool isTerminator = false)
    {
        _items.Add(new StreamItem(bytes, true, isTerminator));
        PieceCount++;
    }

    public void AddTerminator(byte[] bytes) => _items.Add(new StreamItem(bytes, false, true));
}

/// <summary>An error response in a wire's own shape.</summary>
internal sealed record WireError(int Status, byte[] Body, string ContentType = "application/json", IReadOnlyDictionary<string, string>? Headers = null);
