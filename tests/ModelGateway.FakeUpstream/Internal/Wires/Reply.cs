namespace ModelGateway.FakeUpstream.Internal.Wires;

/// <summary>What a wire's request parser found that decides the answer, in no wire's vocabulary.</summary>
internal sealed class RequestFacts
{
    public required string Model { get; init; }

    public bool Stream { get; init; }

    /// <summary>Estimated prompt tokens: ceil(characters / 4) of the prompt text, at least 1.</summary>
    public int PromptTokens { get; init; } = 1;

    /// <summary>Names of the tools the request offers, in order.</summary>
    public IReadOnlyList<string> ToolNames { get; init; } = [];

    /// <summary>The tool the request forces, if it names one.</summary>
    public string? ForcedTool { get; init; }

    /// <summary>The request offers tools but forbids calling them.</summary>
    public bool ToolsDisabled { get; init; }

    public bool ThinkingRequested { get; init; }

    /// <summary>Assistant text the answer continues (a trailing assistant message).</summary>
    public string? Prefill { get; init; }

    public int? MaxTokens { get; init; }

    public IReadOnlyList<string> StopSequences { get; init; } = [];
}

/// <summary>Why an answer stopped, before each wire names it.</summary>
internal enum StopKind
{
    EndTurn,
    MaxTokens,
    ToolUse,
    Refusal,
}

/// <summary>One tool call of an answer, with its arguments already cut into stream pieces.</summary>
internal sealed record PlannedToolCall(string Id, string Name, string Arguments, string[] Pieces);

/// <summary>An answer in no wire's vocabulary: reasoning, text, tool calls, stop reason and token counts.</summary>
internal sealed class Reply
{
    public const string DefaultThinking = "The user wants a greeting. A short, friendly reply will do.";

    public string? Thinking { get; init; }

    public string[] ThinkingPieces { get; init; } = [];

    /// <summary>The opaque signature that closes a reasoning block.</summary>
    public string Signature { get; init; } = string.Empty;

    public string? Text { get; init; }

    public string[] TextPieces { get; init; } = [];

    public IReadOnlyList<PlannedToolCall> ToolCalls { get; init; } = [];

    public StopKind Stop { get; init; }

    /// <summary>The behaviour's verbatim stop reason, which wins over <see cref="Stop"/>.</summary>
    public string? StopOverride { get; init; }

    public int InputTokens { get; init; }

    public int OutputTokens { get; init; }

    public int ThinkingTokens { get; init; }

    public int CacheReadTokens { get; init; }

    public int CacheWriteTokens { get; init; }

    /// <summary>Builds the answer a behaviour describes for a request; <paramref name="toolCallId"/> mints the wire's call ids.</summary>
    public static Reply Build(UpstreamBehavior behavior, RequestFacts facts, Func<string> toolCallId)
    {
        string? text;
        var calls = new List<PlannedToolCall>();
        var stop = StopKind.EndTurn;
        var toolsOffered = facts.ToolNames.Count > 0 && !facts.ToolsDisabled;
        if (behavior.Refusal is { } refusal)
        {
            text = refusal;
            stop = StopKind.Refusal;
        }
        else if (toolsOffered && (behavior.ToolCalls is { Count: > 0 } || behavior.RespondWithToolCall))
        {
            var wanted = behavior.ToolCalls is { Count: > 0 } given
                ? given
                : [new UpstreamToolCall(facts.ForcedTool ?? facts.ToolNames[0], behavior.ToolArguments)];
            foreach (var call in wanted)
            {
                calls.Add(new PlannedToolCall(toolCallId(), call.Name, call.Arguments, TextSplitter.Split(call.Arguments, Math.Max(2, behavior.ChunkCount))));
            }

            text = behavior.Content;
            stop = StopKind.ToolUse;
        }
        else
        {
            text = behavior.Content ?? $"Hello from {facts.Model}. This reply is streamed in pieces.";
            if (facts.Prefill is { Length: > 0 } prefill && text.StartsWith(prefill, StringComparison.Ordinal))
            {
                text = text[prefill.Length..];
            }
        }

        string? thinking = null;
        var thinkingPieces = Array.Empty<string>();
        if (facts.ThinkingRequested && stop != StopKind.Refusal)
        {
            thinking = behavior.Thinking ?? DefaultThinking;
            thinkingPieces = TextSplitter.Split(thinking, behavior.ChunkCount);
        }

        var textPieces = text is null ? [] : TextSplitter.Split(text, behavior.ChunkCount);

        // A max_tokens below the answer's length cuts it (one token per piece), as the provider would.
        if (facts.MaxTokens is { } max && stop == StopKind.EndTurn && thinkingPieces.Length + textPieces.Length > max)
        {
            var keepThinking = Math.Clamp(max, 0, thinkingPieces.Length);
            var keepText = Math.Clamp(max - keepThinking, 0, textPieces.Length);
            thinkingPieces = thinkingPieces[..keepThinking];
            thinking = thinking is null ? null : string.Concat(thinkingPieces);
            textPieces = textPieces[..keepText];
            text = keepText == 0 ? null : string.Concat(textPieces);
            stop = StopKind.MaxTokens;
        }

        var toolPieces = 0;
        foreach (var call in calls)
        {
            toolPieces += call.Pieces.Length;
        }

        return new Reply
        {
            Thinking = thinking,
            ThinkingPieces = thinkingPieces,
            Signature = thinking is null ? string.Empty : WireIds.Signature(),
            Text = text,
            TextPieces = textPieces,
            ToolCalls = calls,
            Stop = stop,
            StopOverride = behavior.StopReason,
            InputTokens = behavior.PromptTokens ?? facts.PromptTokens,
            OutputTokens = behavior.CompletionTokens ?? Math.Max(1, thinkingPieces.Length + textPieces.Length + toolPieces),
            ThinkingTokens = thinkingPieces.Length,
            CacheReadTokens = behavior.CachedTokens ?? 0,
            CacheWriteTokens = behavior.CacheWriteTokens ?? 0,
        };
    }
}
