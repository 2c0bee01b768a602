using System.Text.Json;
using ModelGateway.Canonical;

namespace ModelGateway.Protocols.OpenAI;

/// <summary>What one OpenAI response body or stream chunk says about usage, completion and errors.</summary>
internal struct ResponseFacts
{
    public bool IsError;
    public bool HasUsage;
    public TokenUsage Usage;
    public int ChoiceCount;
    public int FinishedChoices;
    public FinishReason FinishReason;
    public bool HasToolCalls;
    public long OutputTextBytes;
    public int IdStart;
    public int IdLength;
}

/// <summary>Receives the text a stream has produced, for continuation and token counting.</summary>
internal interface IContentSink
{
    void Append(ref Utf8JsonReader reader);
}

/// <summary>
/// Reads an OpenAI response body or SSE chunk with <see cref="Utf8JsonReader"/>: validates it is JSON,
/// and pulls out usage, finish reasons and errors without building a DOM.
/// </summary>
internal static class ResponseInspector
{
    /// <summary>
    /// The relay's per-chunk check on the pass-through path: most chunks of a stream only carry a
    /// piece of text, and for those a few vectorised searches suffice (the quotes of a key cannot
    /// occur unescaped inside a JSON string, so <c>"finish_reason":</c> found in the bytes is the key).
    /// Chunks that end a choice, carry usage or an error are read in full with <see cref="TryInspect"/>.
    /// False when the event is not a JSON object at all.
    /// </summary>
    public static bool TryScan(ReadOnlySpan<byte> json, out ResponseFacts facts)
    {
        var trimmed = json.Trim(" \t\r\n"u8);
        if (trimmed.Length < 2 || trimmed[0] != (byte)'{' || trimmed[^1] != (byte)'}')
        {
            facts = default;
            return false;
        }

        if (HasNonNull(trimmed, "\"finish_reason\":"u8) || HasNonNull(trimmed, "\"usage\":"u8) || trimmed.IndexOf("\"error\""u8) >= 0)
        {
            return TryInspect(json, out facts);
        }

        facts = default;
        facts.ChoiceCount = 1;
        var content = trimmed.IndexOf("\"content\":\""u8);
        if (content >= 0)
        {
            // Only for an estimate when the upstream reports no usage: the text's escaped length is close enough.
            var text = trimmed[(content + 11)..];
            var end = text.IndexOf((byte)'"');
            while (end > 0 && text[end - 1] == (byte)'\\')
            {
                var next = text[(end + 1)..].IndexOf((byte)'"');
                end = next < 0 ? -1 : end + 1 + next;
            }

            facts.OutputTextBytes = end < 0 ? 0 : end;
        }

        facts.HasToolCalls = trimmed.IndexOf("\"tool_calls\""u8) >= 0;
        return true;
    }

    // True when the key occurs and its value is not null.
    private static bool HasNonNull(ReadOnlySpan<byte> json, ReadOnlySpan<byte> key)
    {
        var at = json.IndexOf(key);
        if (at < 0)
        {
            return false;
        }

        var value = json[(at + key.Length)..].TrimStart(" \t\r\n"u8);
        return !value.StartsWith("null"u8);
    }

    public static bool TryInspect(ReadOnlySpan<byte> json, out ResponseFacts facts, IContentSink? sink = null)
    {
        facts = default;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 128 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        facts.IdStart = (int)reader.TokenStartIndex;
                        facts.IdLength = reader.ValueSpan.Length + 2;
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    facts.IsError |= reader.TokenType != JsonTokenType.Null;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        ReadUsage(ref reader, ref facts.Usage);
                        facts.HasUsage = true;
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("choices"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        ReadChoices(ref reader, ref facts, sink);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            // Reading past the end object proves nothing but whitespace follows.
            return reader.TokenType == JsonTokenType.EndObject && !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static void ReadUsage(ref Utf8JsonReader reader, ref TokenUsage usage)
    {
        usage.Reported = true;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("prompt_tokens"u8) || reader.ValueTextEquals("input_tokens"u8))
            {
                reader.Read();
                usage.Input = ReadCount(ref reader);
            }
            else if (reader.ValueTextEquals("completion_tokens"u8) || reader.ValueTextEquals("output_tokens"u8))
            {
                reader.Read();
                usage.Output = ReadCount(ref reader);
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var cached = reader.ValueTextEquals("cached_tokens"u8);
                    reader.Read();
                    if (cached)
                    {
                        usage.CacheRead = ReadCount(ref reader);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static long ReadCount(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0)
        {
            return value;
        }

        reader.Skip();
        return 0;
    }

    private static void ReadChoices(ref Utf8JsonReader reader, ref ResponseFacts facts, IContentSink? sink)
    {
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }

            facts.ChoiceCount++;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("finish_reason"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        facts.FinishedChoices++;
                        facts.FinishReason = reader.ValueTextEquals("stop"u8) ? FinishReason.Stop
                            : reader.ValueTextEquals("length"u8) ? FinishReason.Length
                            : reader.ValueTextEquals("tool_calls"u8) ? FinishReason.ToolCalls
                            : reader.ValueTextEquals("content_filter"u8) ? FinishReason.ContentFilter
                            : reader.ValueTextEquals("function_call"u8) ? FinishReason.FunctionCall
                            : FinishReason.Other;
                    }
                }
                else if (reader.ValueTextEquals("delta"u8) || reader.ValueTextEquals("message"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        ReadMessage(ref reader, ref facts, sink);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("text"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        facts.OutputTextBytes += reader.ValueSpan.Length;
                        sink?.Append(ref reader);
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
    }

    private static void ReadMessage(ref Utf8JsonReader reader, ref ResponseFacts facts, IContentSink? sink)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("content"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    facts.OutputTextBytes += reader.ValueSpan.Length;
                    sink?.Append(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("tool_calls"u8) || reader.ValueTextEquals("function_call"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Null)
                {
                    facts.HasToolCalls = true;
                    var start = reader.TokenStartIndex;
                    reader.Skip();
                    facts.OutputTextBytes += reader.BytesConsumed - start;
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }
}
