using System.Text.Json;
using System.Text.Json.Serialization;
using ModelGateway.Canonical;

namespace ModelGateway.Caching;

/// <summary>One stored answer: the canonical response and when and by whom it was made.</summary>
internal sealed class CachedAnswer
{
    public string? Model { get; set; }
    public string Text { get; set; } = string.Empty;
    public string? Reasoning { get; set; }
    public string? ReasoningSignature { get; set; }
    public List<CachedToolCall>? ToolCalls { get; set; }
    public FinishReason Finish { get; set; }
    public long InputTokens { get; set; }
    public long CacheReadTokens { get; set; }
    public long CacheWriteTokens { get; set; }
    public long OutputTokens { get; set; }
    public long ReasoningTokens { get; set; }

    /// <summary>What the answer cost when it was made (USD), which is what each hit saves.</summary>
    public double Cost { get; set; }

    /// <summary>The deployment that made it.</summary>
    public string? Deployment { get; set; }

    /// <summary>Unix milliseconds when it was stored, for the <c>age</c> header.</summary>
    public long StoredAt { get; set; }

    public TokenUsage Usage => new()
    {
        Input = InputTokens,
        CacheRead = CacheReadTokens,
        CacheWrite = CacheWriteTokens,
        Output = OutputTokens,
        Reasoning = ReasoningTokens,
        Reported = true,
    };

    public static CachedAnswer From(ChatResponse response, in TokenUsage usage, double cost, string deployment, long storedAt) => new()
    {
        Model = response.Model,
        Text = response.Text,
        Reasoning = response.Reasoning,
        ReasoningSignature = response.ReasoningSignature,
        ToolCalls = response.ToolCalls.Count == 0 ? null : response.ToolCalls.Select(static c => new CachedToolCall(c.Id, c.Name, c.ArgumentsJson)).ToList(),
        Finish = response.Finish,
        InputTokens = usage.Input,
        CacheReadTokens = usage.CacheRead,
        CacheWriteTokens = usage.CacheWrite,
        OutputTokens = usage.Output,
        ReasoningTokens = usage.Reasoning,
        Cost = cost,
        Deployment = deployment,
        StoredAt = storedAt,
    };

    public ChatResponse ToResponse(string id) => new()
    {
        Id = id,
        Model = Model,
        Text = Text,
        Reasoning = Reasoning,
        ReasoningSignature = ReasoningSignature,
        ToolCalls = ToolCalls is null ? [] : ToolCalls.Select(static c => new ToolCallResult(c.Id, c.Name, c.Arguments)).ToArray(),
        Finish = Finish,
        Usage = Usage,
    };

    public byte[] Serialize() => JsonSerializer.SerializeToUtf8Bytes(this, CacheJsonContext.Default.CachedAnswer);

    public static CachedAnswer? Deserialize(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return JsonSerializer.Deserialize(bytes, CacheJsonContext.Default.CachedAnswer);
        }
        catch (JsonException)
        {
            // An entry another version wrote in a shape this one cannot read is a miss, not an error.
            return null;
        }
    }
}

internal sealed record CachedToolCall(string Id, string Name, string Arguments);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, UseStringEnumConverter = true)]
[JsonSerializable(typeof(CachedAnswer))]
internal sealed partial class CacheJsonContext : JsonSerializerContext;
