using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Providers.Anthropic;

namespace ModelGateway.Protocols.Anthropic;

/// <summary>
/// Reads an Anthropic deployment's events as they pass through to an Anthropic client: usage from
/// <c>message_start</c> and <c>message_delta</c>, the stop reason, tool use, the terminal
/// <c>message_stop</c> and the in-band <c>error</c>; and a whole message body the same way.
/// </summary>
internal sealed class MessagesEventInspector : NamedEventInspector
{
    public static readonly MessagesEventInspector Instance = new();

    public override bool TryInspect(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, out NamedEventFacts facts)
    {
        facts = default;
        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 128 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            var name = EventName(eventName, data);
            if (name.SequenceEqual("content_block_delta"u8))
            {
                // The hot event: only its size matters here.
                facts.OutputBytes = data.Length;
            }
            else if (name.SequenceEqual("message_start"u8))
            {
                if (FindObject(ref reader, "message"u8))
                {
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("usage"u8) && reader.Read())
                        {
                            facts.HasUsage = ReadUsage(ref reader, ref facts.Usage);
                        }
                        else
                        {
                            reader.Read();
                            reader.Skip();
                        }
                    }
                }
            }
            else if (name.SequenceEqual("content_block_start"u8))
            {
                facts.StartsToolCall = ReadBlockStart(ref reader).Type == Block.ToolUse;
            }
            else if (name.SequenceEqual("message_delta"u8))
            {
                ReadMessageDelta(ref reader, ref facts);
            }
            else if (name.SequenceEqual("message_stop"u8))
            {
                facts.IsTerminal = true;
            }
            else if (name.SequenceEqual("error"u8))
            {
                facts.IsError = true;
            }

            // ping, content_block_stop and event types added later carry nothing the relay needs.
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    public override void WriteMissingEnd(IBufferWriter<byte> output, in TokenUsage usage, FinishReason finish)
        => output.Write("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"u8);

    /// <summary>What a whole (non-streamed) message body says; false when it is not a Messages answer.</summary>
    public static bool TryInspectBody(ReadOnlySpan<byte> body, out ResponseFacts facts)
    {
        facts = default;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 128 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    facts.IsError |= reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("error"u8);
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    facts.IsError |= reader.TokenType == JsonTokenType.StartObject;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    facts.HasUsage = ReadUsage(ref reader, ref facts.Usage);
                }
                else if (reader.ValueTextEquals("stop_reason"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        facts.FinishedChoices = 1;
                        facts.FinishReason = AnthropicErrors.MapStopReason(reader.GetString(), jsonTool: false);
                    }
                }
                else if (reader.ValueTextEquals("content"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        reader.Skip();
                        continue;
                    }

                    facts.ChoiceCount = 1;
                    var start = reader.TokenStartIndex;
                    var depth = reader.CurrentDepth;
                    while (reader.Read() && reader.CurrentDepth > depth)
                    {
                        if (reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("tool_use"u8))
                        {
                            facts.HasToolCalls = true;
                        }
                    }

                    facts.OutputTextBytes = reader.BytesConsumed - start;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            return reader.TokenType == JsonTokenType.EndObject && !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The event's name: its <c>event:</c> line, else the data's leading <c>"type"</c> (Anthropic sends it first).</summary>
    internal static ReadOnlySpan<byte> EventName(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data)
    {
        if (!eventName.IsEmpty)
        {
            return eventName;
        }

        var reader = new Utf8JsonReader(data);
        return reader.Read() && reader.Read() && reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("type"u8)
            && reader.Read() && reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped
            ? data.Slice((int)reader.TokenStartIndex + 1, reader.ValueSpan.Length)
            : [];
    }

    /// <summary>Moves the reader (on the event's object) into the top-level object property <paramref name="name"/>.</summary>
    internal static bool FindObject(ref Utf8JsonReader reader, ReadOnlySpan<byte> name)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var found = reader.ValueTextEquals(name);
            reader.Read();
            if (found && reader.TokenType == JsonTokenType.StartObject)
            {
                return true;
            }

            reader.Skip();
        }

        return false;
    }

    /// <summary>The kinds of content block the gateway tells apart.</summary>
    internal enum Block : byte
    {
        Other,
        Text,
        Thinking,
        ToolUse,
    }

    /// <summary>A block start's index and kind.</summary>
    internal static (int Index, Block Type) ReadBlockStart(ref Utf8JsonReader reader)
    {
        var index = 0;
        var type = Block.Other;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                index = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var i) ? i : 0;
            }
            else if (reader.ValueTextEquals("content_block"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isType = reader.ValueTextEquals("type"u8);
                    reader.Read();
                    if (isType && reader.TokenType == JsonTokenType.String)
                    {
                        type = reader.ValueTextEquals("text"u8) ? Block.Text
                            : reader.ValueTextEquals("thinking"u8) ? Block.Thinking
                            : reader.ValueTextEquals("tool_use"u8) ? Block.ToolUse
                            : Block.Other;
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

        return (index, type);
    }

    /// <summary>Reads Anthropic usage (the reader on its value) into canonical counts: input includes cache reads and writes.</summary>
    internal static bool ReadUsage(ref Utf8JsonReader reader, ref TokenUsage usage)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return false;
        }

        ReadUsageBody(ref reader, ref usage);
        return true;
    }

    /// <summary>Reads the fields of a usage object the reader has just entered; counts it does not carry keep their value.</summary>
    internal static void ReadUsageBody(ref Utf8JsonReader reader, ref TokenUsage usage)
    {
        var uncached = usage.Input - usage.CacheRead - usage.CacheWrite;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("input_tokens"u8))
            {
                reader.Read();
                uncached = Count(ref reader) ?? uncached;
            }
            else if (reader.ValueTextEquals("output_tokens"u8))
            {
                reader.Read();
                usage.Output = Count(ref reader) ?? usage.Output;
            }
            else if (reader.ValueTextEquals("cache_creation_input_tokens"u8))
            {
                reader.Read();
                usage.CacheWrite = Count(ref reader) ?? usage.CacheWrite;
            }
            else if (reader.ValueTextEquals("cache_read_input_tokens"u8))
            {
                reader.Read();
                usage.CacheRead = Count(ref reader) ?? usage.CacheRead;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        usage.Input = uncached + usage.CacheRead + usage.CacheWrite;
        usage.Reported = true;
    }

    private static void ReadMessageDelta(ref Utf8JsonReader reader, ref NamedEventFacts facts)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var isStop = reader.ValueTextEquals("stop_reason"u8);
                    reader.Read();
                    if (isStop && reader.TokenType == JsonTokenType.String)
                    {
                        facts.Finish = AnthropicErrors.MapStopReason(reader.GetString(), jsonTool: false);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                facts.HasUsage = ReadUsage(ref reader, ref facts.Usage);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static long? Count(ref Utf8JsonReader reader)
        => reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0 ? value : null;
}
