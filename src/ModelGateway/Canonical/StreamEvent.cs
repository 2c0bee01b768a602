namespace ModelGateway.Canonical;

/// <summary>What one canonical stream event says.</summary>
internal enum StreamEventKind : byte
{
    None,

    /// <summary>The answer begins: <see cref="StreamEvent.Id"/> is the upstream's message id, <see cref="StreamEvent.Name"/> its model.</summary>
    Started,

    /// <summary>A piece of the answer's text.</summary>
    TextDelta,

    /// <summary>A piece of the model's reasoning (thinking), never part of the answer's text.</summary>
    ReasoningDelta,

    /// <summary>The opaque signature that closes a reasoning block (Anthropic), needed to send it back.</summary>
    ReasoningSignature,

    /// <summary>A tool call begins: <see cref="StreamEvent.Index"/>, <see cref="StreamEvent.Id"/> and tool <see cref="StreamEvent.Name"/>.</summary>
    ToolCallStart,

    /// <summary>A fragment of a tool call's JSON arguments, for the call at <see cref="StreamEvent.Index"/>.</summary>
    ToolCallDelta,

    /// <summary>The answer is complete: <see cref="StreamEvent.Finish"/> says why.</summary>
    Finish,

    /// <summary>Token counts so far; later events replace earlier ones (counts are cumulative).</summary>
    Usage,

    /// <summary>The upstream reported an error: <see cref="StreamEvent.Error"/> classifies it.</summary>
    Error,
}

/// <summary>
/// One event of the internal model between wire formats. A provider's decoder produces them from its
/// upstream stream; a client protocol's encoder writes them in its own wire. <see cref="Utf8"/> is
/// unescaped UTF-8 owned by the decoder and valid until its next read, so nothing is allocated per
/// text delta.
/// </summary>
internal struct StreamEvent
{
    public StreamEventKind Kind;

    /// <summary>The tool call's position in the answer (0, 1, …), for tool-call events.</summary>
    public int Index;

    /// <summary>Text, reasoning, a signature or an arguments fragment, as unescaped UTF-8.</summary>
    public ReadOnlyMemory<byte> Utf8;

    /// <summary>The message id (<see cref="StreamEventKind.Started"/>) or the tool call id.</summary>
    public string? Id;

    /// <summary>The model (<see cref="StreamEventKind.Started"/>) or the tool's name.</summary>
    public string? Name;

    public FinishReason Finish;
    public TokenUsage Usage;
    public UpstreamError? Error;

    /// <summary>True for the events a client sees as the answer (its first one is the attempt's "first byte").</summary>
    public readonly bool IsContent => Kind is StreamEventKind.TextDelta or StreamEventKind.ReasoningDelta or StreamEventKind.ReasoningSignature
        or StreamEventKind.ToolCallStart or StreamEventKind.ToolCallDelta or StreamEventKind.Finish;

    public static StreamEvent Started(string? id, string? model) => new() { Kind = StreamEventKind.Started, Id = id, Name = model };

    public static StreamEvent Text(ReadOnlyMemory<byte> utf8) => new() { Kind = StreamEventKind.TextDelta, Utf8 = utf8 };

    public static StreamEvent Reasoning(ReadOnlyMemory<byte> utf8) => new() { Kind = StreamEventKind.ReasoningDelta, Utf8 = utf8 };

    public static StreamEvent Signature(ReadOnlyMemory<byte> utf8) => new() { Kind = StreamEventKind.ReasoningSignature, Utf8 = utf8 };

    public static StreamEvent ToolCall(int index, string id, string name) => new() { Kind = StreamEventKind.ToolCallStart, Index = index, Id = id, Name = name };

    public static StreamEvent ToolArguments(int index, ReadOnlyMemory<byte> utf8) => new() { Kind = StreamEventKind.ToolCallDelta, Index = index, Utf8 = utf8 };

    public static StreamEvent Finished(FinishReason reason) => new() { Kind = StreamEventKind.Finish, Finish = reason };

    public static StreamEvent Counted(in TokenUsage usage) => new() { Kind = StreamEventKind.Usage, Usage = usage };

    public static StreamEvent Failed(UpstreamError error) => new() { Kind = StreamEventKind.Error, Error = error };
}
