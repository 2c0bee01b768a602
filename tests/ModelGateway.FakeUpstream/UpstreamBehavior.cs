namespace ModelGateway.FakeUpstream;

/// <summary>What the fake answers to one request: status, timing, content, usage and faults.</summary>
public sealed record UpstreamBehavior
{
    /// <summary>HTTP status. Non-2xx statuses answer with the wire's own error body (OpenAI's on OpenAI paths).</summary>
    public int StatusCode { get; init; } = 200;

    /// <summary>Error message for non-2xx statuses; defaults to what OpenAI says for that status or code.</summary>
    public string? ErrorMessage { get; init; }

    /// <summary>
    /// Error type in the wire's own vocabulary. OpenAI: defaults by status (4xx <c>invalid_request_error</c>, 429
    /// <c>requests</c>, 5xx <c>server_error</c>). Anthropic: <c>error.type</c> (<c>overloaded_error</c>...). Google:
    /// <c>error.status</c> (<c>RESOURCE_EXHAUSTED</c>...). Bedrock: the exception name in <c>x-amzn-ErrorType</c>
    /// (<c>ThrottlingException</c>, <c>ModelNotReadyException</c>...). Each wire defaults it from the status.
    /// </summary>
    public string? ErrorType { get; init; }

    /// <summary>
    /// Error code, e.g. <c>context_length_exceeded</c>, <c>content_filter</c>, <c>rate_limit_exceeded</c>.
    /// On the other wires, with a 4xx status, <c>context_length_exceeded</c> selects that wire's own
    /// too-long-input error; other codes are ignored there.
    /// </summary>
    public string? ErrorCode { get; init; }

    /// <summary>Error <c>param</c>; null by default.</summary>
    public string? ErrorParam { get; init; }

    /// <summary>Extra response headers, e.g. <c>retry-after</c>, <c>x-ratelimit-remaining-requests</c>.</summary>
    public IReadOnlyDictionary<string, string>? Headers { get; init; }

    /// <summary>Wait before sending the status line and headers (any response).</summary>
    public TimeSpan HeaderDelay { get; init; }

    /// <summary>Streaming: wait after the headers, before the first data event.</summary>
    public TimeSpan FirstChunkDelay { get; init; }

    /// <summary>Streaming: wait before each content chunk (not before the role, finish or usage chunks).</summary>
    public TimeSpan ChunkDelay { get; init; }

    /// <summary>How many content chunks the text is split into when streaming (on word boundaries where possible).</summary>
    public int ChunkCount { get; init; } = 5;

    /// <summary>Full assistant text; defaults to <c>"Hello from {model}. This reply is streamed in pieces."</c>.</summary>
    public string? Content { get; init; }

    /// <summary>Overrides <c>usage.prompt_tokens</c>; default is ceil(characters of all prompt text / 4), at least 1.</summary>
    public int? PromptTokens { get; init; }

    /// <summary>Overrides <c>usage.completion_tokens</c>; default is the number of chunks produced (times <c>n</c>).</summary>
    public int? CompletionTokens { get; init; }

    /// <summary>
    /// Sets <c>usage.prompt_tokens_details.cached_tokens</c>; on the other wires the cache-read tokens
    /// (Anthropic <c>cache_read_input_tokens</c>, Gemini <c>cachedContentTokenCount</c>, Bedrock <c>cacheReadInputTokens</c>).
    /// </summary>
    public int? CachedTokens { get; init; }

    public UpstreamFault Fault { get; init; }

    /// <summary>
    /// For mid-stream faults: how many content chunks are written before the fault. The opening role chunk always
    /// comes first, so 0 means "right after the role chunk"; a value at or past the chunk count means "just before
    /// the finish chunk".
    /// </summary>
    public int FaultAfterChunks { get; init; }

    /// <summary>Length of the pause for <see cref="UpstreamFault.IdleGap"/>.</summary>
    public TimeSpan IdleGap { get; init; }

    /// <summary>Streaming: awaited before the last content chunk is written; tests complete it.</summary>
    public Task? HoldBeforeLastChunk { get; init; }

    /// <summary>When the request has tools, answer with a call to the first one (<c>finish_reason</c> <c>tool_calls</c>).</summary>
    public bool RespondWithToolCall { get; init; }

    /// <summary>Arguments of that tool call, as JSON text.</summary>
    public string ToolArguments { get; init; } = "{\"location\":\"Paris\"}";

    /// <summary>
    /// When set, the assistant refuses with this text instead of answering: OpenAI <c>message.refusal</c>,
    /// Anthropic <c>stop_reason: refusal</c>, Gemini <c>finishReason: SAFETY</c>, Bedrock <c>content_filtered</c>.
    /// </summary>
    public string? Refusal { get; init; }

    /// <summary>
    /// Anthropic, Gemini, Vertex and Bedrock wires: when the request offers tools, answer with these calls, in this
    /// order (several means parallel calls). Takes precedence over <see cref="RespondWithToolCall"/>, which on these
    /// wires answers with one call to the first (or the forced) tool with <see cref="ToolArguments"/>.
    /// When <see cref="Content"/> is also set, a text block with it comes before the calls.
    /// </summary>
    public IReadOnlyList<UpstreamToolCall>? ToolCalls { get; init; }

    /// <summary>
    /// Anthropic, Gemini, Vertex and Bedrock wires: the reasoning text sent before the answer when the request
    /// asks for it (Anthropic <c>thinking</c>, Gemini <c>thinkingConfig.includeThoughts</c>, Bedrock
    /// <c>additionalModelRequestFields.thinking</c>); defaults to a fixed sentence.
    /// </summary>
    public string? Thinking { get; init; }

    /// <summary>
    /// Anthropic, Gemini, Vertex and Bedrock wires: cache-write tokens (Anthropic <c>cache_creation_input_tokens</c>,
    /// Bedrock <c>cacheWriteInputTokens</c>). Cache reads are <see cref="CachedTokens"/> on every wire.
    /// </summary>
    public int? CacheWriteTokens { get; init; }

    /// <summary>
    /// Overrides the stop reason, written verbatim in the wire's own vocabulary: Anthropic <c>stop_sequence</c>,
    /// Gemini <c>RECITATION</c>, Bedrock <c>guardrail_intervened</c>. Null derives it from the answer.
    /// </summary>
    public string? StopReason { get; init; }

    /// <summary>
    /// Gemini and Vertex Gemini: the prompt is blocked (<c>promptFeedback.blockReason</c>, e.g. <c>SAFETY</c>,
    /// <c>BLOCKLIST</c>, <c>PROHIBITED_CONTENT</c>, <c>OTHER</c>) and no candidate comes back.
    /// </summary>
    public string? PromptBlockReason { get; init; }

    /// <summary>
    /// How long a rate-limited client should wait: Anthropic <c>retry-after</c> header, Google
    /// <c>RetryInfo.retryDelay</c>. Defaults to one second on a 429 from those wires.
    /// </summary>
    public TimeSpan? RetryAfter { get; init; }
}

/// <summary>One tool call the fake answers with: the tool's name and its arguments as JSON object text.</summary>
public sealed record UpstreamToolCall(string Name, string Arguments);

/// <summary>
/// A failure the fake injects into a response. Faults marked "streaming" do nothing to non-streaming requests
/// unless their description says otherwise.
/// </summary>
public enum UpstreamFault
{
    None,

    /// <summary>Abort the connection (<c>HttpContext.Abort()</c>) without any response.</summary>
    ResetBeforeHeaders,

    /// <summary>
    /// Streaming: abort after <c>FaultAfterChunks</c> content chunks; non-streaming: send half the body, then abort.
    /// The abort follows the last flush by 50 ms so that the bytes sent first really reach the client.
    /// </summary>
    ResetAfterChunks,

    /// <summary>Answer <c>StatusCode</c> (502 when it is 2xx) with an nginx-style <c>text/html</c> page.</summary>
    HtmlErrorPage,

    /// <summary>200 <c>application/json</c> whose body is truncated JSON, even when the request asked to stream.</summary>
    InvalidJson,

    /// <summary>Streaming: after <c>FaultAfterChunks</c> chunks write <c>data: {not json</c>, then continue normally.</summary>
    MalformedSseEvent,

    /// <summary>Streaming: finish chunk (and usage chunk when asked for), then end the body cleanly without <c>[DONE]</c>.</summary>
    OmitDone,

    /// <summary>Streaming: finish chunk (and usage chunk when asked for), then hold the connection open until the client aborts.</summary>
    StallAfterFinish,

    /// <summary>
    /// Streaming: after <c>FaultAfterChunks</c> chunks wait <c>IdleGap</c>, then continue normally;
    /// non-streaming: send the headers, wait, then the body.
    /// </summary>
    IdleGap,

    /// <summary>Streaming: after <c>FaultAfterChunks</c> chunks end the body cleanly, with no finish chunk and no <c>[DONE]</c>.</summary>
    TruncatedStream,

    /// <summary>
    /// Streaming: after <c>FaultAfterChunks</c> chunks write the wire's in-stream error and end the body cleanly:
    /// OpenAI <c>data: {"error":..}</c>, Anthropic <c>event: error</c> (default <c>overloaded_error</c>), Gemini
    /// <c>data: {"error":..}</c> (default 503 <c>UNAVAILABLE</c>), Bedrock an exception message (default
    /// <c>throttlingException</c>). <c>ErrorType</c> and <c>ErrorMessage</c> choose the error.
    /// </summary>
    ErrorEvent,
}
