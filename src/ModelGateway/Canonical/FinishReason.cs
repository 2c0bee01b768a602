namespace ModelGateway.Canonical;

/// <summary>Why a choice stopped, in OpenAI's vocabulary; each protocol maps it to its own.</summary>
internal enum FinishReason : byte
{
    None,
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
    Other,
}
