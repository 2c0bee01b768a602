using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Protocols.OpenAI;

namespace ModelGateway.Protocols.Responses;

/// <summary>
/// Reads what a pass-through Responses answer says, without building a DOM: for streams, each typed
/// event (deltas for the output estimate, a function call opening, the terminal event with usage, an
/// <c>error</c> or <c>response.failed</c>); for whole bodies, the <c>response</c> object.
/// </summary>
internal sealed class ResponsesInspector : NamedEventInspector
{
    public static readonly ResponsesInspector Instance = new();

    public override bool TryInspect(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, out NamedEventFacts facts)
    {
        facts = default;
        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 256 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            var kind = Classify(eventName);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (kind == EventKind.Unnamed && reader.TokenType == JsonTokenType.String)
                    {
                        kind = Classify(reader.ValueSpan);
                    }
                }
                else if (reader.ValueTextEquals("delta"u8) && kind == EventKind.Delta)
                {
                    reader.Read();
                    facts.OutputBytes += reader.TokenType == JsonTokenType.String ? reader.ValueSpan.Length : 0;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("item"u8) && kind == EventKind.ItemAdded)
                {
                    reader.Read();
                    facts.StartsToolCall |= IsFunctionCall(ref reader);
                }
                else if (reader.ValueTextEquals("response"u8) && kind is EventKind.Terminal or EventKind.Failed)
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        var response = default(ResponseFacts);
                        ReadResponse(ref reader, ref response);
                        facts.HasUsage = response.HasUsage;
                        facts.Usage = response.Usage;
                        facts.Finish = response.FinishReason;
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

            switch (kind)
            {
                case EventKind.Terminal:
                    facts.IsTerminal = true;
                    if (facts.Finish == FinishReason.None)
                    {
                        facts.Finish = FinishReason.Stop;
                    }

                    break;
                case EventKind.Failed or EventKind.Error:
                    facts.IsError = true;
                    break;
            }

            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    // The upstream's own terminal event is never missing from an answer the relay calls finished: only
    // the terminal event finishes a Responses stream, and it carries the whole response object.
    public override void WriteMissingEnd(IBufferWriter<byte> output, in TokenUsage usage, FinishReason finish)
    {
    }

    /// <summary>What a whole <c>response</c> object says: usage, status, an error, its id and output size.</summary>
    public static bool TryInspectBody(ReadOnlySpan<byte> body, out ResponseFacts facts)
    {
        facts = default;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 256 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            ReadResponse(ref reader, ref facts);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    // Reads the response object the reader is on, up to its end.
    private static void ReadResponse(ref Utf8JsonReader reader, ref ResponseFacts facts)
    {
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
            }
            else if (reader.ValueTextEquals("status"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    facts.IsError |= reader.ValueTextEquals("failed"u8);
                    facts.FinishReason = reader.ValueTextEquals("incomplete"u8) ? FinishReason.Length
                        : reader.ValueTextEquals("completed"u8) ? FinishReason.Stop
                        : facts.FinishReason;
                    facts.FinishedChoices = facts.FinishReason == FinishReason.None ? 0 : 1;
                }
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
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    facts.Usage = ReadUsage(ref reader);
                    facts.HasUsage = true;
                }
            }
            else if (reader.ValueTextEquals("output"u8))
            {
                reader.Read();
                var start = reader.TokenStartIndex;
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    var depth = reader.CurrentDepth;
                    while (reader.Read() && reader.CurrentDepth > depth)
                    {
                        if (reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("function_call"u8))
                        {
                            facts.HasToolCalls = true;
                        }
                    }
                }
                else
                {
                    reader.Skip();
                }

                facts.OutputTextBytes = reader.BytesConsumed - start;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (facts.HasToolCalls && facts.FinishReason == FinishReason.Stop)
        {
            facts.FinishReason = FinishReason.ToolCalls;
        }
    }

    /// <summary>Responses usage: <c>input_tokens</c> includes cached ones, <c>output_tokens</c> reasoning ones.</summary>
    public static TokenUsage ReadUsage(ref Utf8JsonReader reader)
    {
        var usage = new TokenUsage { Reported = true };
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("input_tokens"u8))
            {
                reader.Read();
                usage.Input = reader.TokenType == JsonTokenType.Number ? reader.GetInt64() : 0;
            }
            else if (reader.ValueTextEquals("output_tokens"u8))
            {
                reader.Read();
                usage.Output = reader.TokenType == JsonTokenType.Number ? reader.GetInt64() : 0;
            }
            else if (reader.ValueTextEquals("input_tokens_details"u8) || reader.ValueTextEquals("output_tokens_details"u8))
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
                    var reasoning = reader.ValueTextEquals("reasoning_tokens"u8);
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number)
                    {
                        if (cached)
                        {
                            usage.CacheRead = reader.GetInt64();
                        }
                        else if (reasoning)
                        {
                            usage.Reasoning = reader.GetInt64();
                        }
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

        return usage;
    }

    private static bool IsFunctionCall(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return false;
        }

        var found = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isType = reader.ValueTextEquals("type"u8);
            reader.Read();
            found |= isType && reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("function_call"u8);
            reader.Skip();
        }

        return found;
    }

    private static EventKind Classify(ReadOnlySpan<byte> name)
    {
        if (name.IsEmpty)
        {
            return EventKind.Unnamed;
        }

        if (name.SequenceEqual("response.completed"u8) || name.SequenceEqual("response.incomplete"u8))
        {
            return EventKind.Terminal;
        }

        if (name.SequenceEqual("response.failed"u8))
        {
            return EventKind.Failed;
        }

        if (name.SequenceEqual("error"u8))
        {
            return EventKind.Error;
        }

        if (name.SequenceEqual("response.output_item.added"u8))
        {
            return EventKind.ItemAdded;
        }

        return name.EndsWith(".delta"u8) ? EventKind.Delta : EventKind.Other;
    }

    private enum EventKind : byte
    {
        Unnamed,
        Other,
        Delta,
        ItemAdded,
        Terminal,
        Failed,
        Error,
    }
}
