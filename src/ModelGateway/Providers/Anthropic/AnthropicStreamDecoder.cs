using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;

namespace ModelGateway.Providers.Anthropic;

/// <summary>
/// Decodes Anthropic's Messages stream (<c>message_start</c>, <c>content_block_start</c>/<c>delta</c>/<c>stop</c>,
/// <c>message_delta</c>, <c>message_stop</c>, <c>ping</c>, <c>error</c>) into canonical events. Content
/// blocks are numbered across kinds; tool calls get their own 0-based index, as OpenAI clients expect.
/// </summary>
internal sealed class AnthropicStreamDecoder(Stream body, Deployment deployment, bool jsonTool, int maxEventBytes) : SseStreamDecoder(body, maxEventBytes)
{
    private const byte TextBlock = 1;
    private const byte ToolBlock = 2;
    private const byte ThinkingBlock = 3;
    private const byte JsonAnswerBlock = 4;
    private const byte OtherBlock = 5;

    // Per content block index: its kind and, for tool calls, the tool index.
    private readonly List<(byte Kind, int Tool)> _blocks = [];
    private int _tools;
    private TokenUsage _usage;

    protected override void Decode(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data)
    {
        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 128 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InvalidDataException("An Anthropic stream event is not a JSON object.");
        }

        var type = Classify(eventName);
        if (type == EventType.Unnamed)
        {
            // Without an event: line, the data's "type" names the event (Anthropic sends it first).
            var probe = reader;
            type = probe.Read() && probe.TokenType == JsonTokenType.PropertyName && probe.ValueTextEquals("type"u8) && probe.Read() && probe.TokenType == JsonTokenType.String
                ? Classify(probe.ValueSpan)
                : EventType.Other;
        }

        switch (type)
        {
            case EventType.BlockDelta:
                ReadDelta(ref reader);
                break;
            case EventType.BlockStart:
                ReadBlockStart(ref reader);
                break;
            case EventType.MessageStart:
                ReadMessageStart(ref reader);
                break;
            case EventType.MessageDelta:
                ReadMessageDelta(ref reader);
                break;
            case EventType.MessageStop:
                IsComplete = true;
                break;
            case EventType.Error:
                Emit(StreamEvent.Failed(AnthropicErrors.InBand(data, deployment)));
                break;

            // ping, content_block_stop and event types added later carry nothing to relay.
        }
    }

    private enum EventType : byte
    {
        Unnamed,
        Other,
        MessageStart,
        BlockStart,
        BlockDelta,
        MessageDelta,
        MessageStop,
        Error,
    }

    private static EventType Classify(ReadOnlySpan<byte> name)
        => name.IsEmpty ? EventType.Unnamed
            : name.SequenceEqual("content_block_delta"u8) ? EventType.BlockDelta
            : name.SequenceEqual("content_block_start"u8) ? EventType.BlockStart
            : name.SequenceEqual("message_start"u8) ? EventType.MessageStart
            : name.SequenceEqual("message_delta"u8) ? EventType.MessageDelta
            : name.SequenceEqual("message_stop"u8) ? EventType.MessageStop
            : name.SequenceEqual("error"u8) ? EventType.Error
            : EventType.Other;

    private void ReadMessageStart(ref Utf8JsonReader reader)
    {
        string? id = null;
        string? model = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                reader.Skip();
                continue;
            }

            reader.Read();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    id = reader.GetString();
                }
                else if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    model = reader.GetString();
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    ReadUsage(ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }

        Emit(StreamEvent.Started(id, model));
        Emit(StreamEvent.Counted(_usage));
    }

    private void ReadBlockStart(ref Utf8JsonReader reader)
    {
        var index = 0;
        var kind = OtherBlock;
        string? id = null;
        string? name = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                index = reader.GetInt32();
            }
            else if (reader.ValueTextEquals("content_block"u8))
            {
                reader.Read();
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("type"u8))
                    {
                        reader.Read();
                        kind = reader.ValueTextEquals("text"u8) ? TextBlock
                            : reader.ValueTextEquals("tool_use"u8) ? ToolBlock
                            : reader.ValueTextEquals("thinking"u8) ? ThinkingBlock
                            : OtherBlock;
                    }
                    else if (reader.ValueTextEquals("id"u8))
                    {
                        reader.Read();
                        id = reader.GetString();
                    }
                    else if (reader.ValueTextEquals("name"u8))
                    {
                        reader.Read();
                        name = reader.GetString();
                    }
                    else if (reader.ValueTextEquals("text"u8) && kind == TextBlock)
                    {
                        // A text block may start with text already in it.
                        reader.Read();
                        if (reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0)
                        {
                            Emit(StreamEvent.Text(Text(ref reader)));
                        }
                    }
                    else
                    {
                        reader.Read();
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

        while (_blocks.Count <= index)
        {
            _blocks.Add((OtherBlock, -1));
        }

        if (kind == ToolBlock && jsonTool && name == AnthropicRequestMapper.JsonToolName)
        {
            _blocks[index] = (JsonAnswerBlock, -1);
        }
        else if (kind == ToolBlock)
        {
            var tool = _tools++;
            _blocks[index] = (ToolBlock, tool);
            Emit(StreamEvent.ToolCall(tool, id ?? $"toolu_{tool}", name ?? string.Empty));
        }
        else
        {
            _blocks[index] = (kind, -1);
        }
    }

    private void ReadDelta(ref Utf8JsonReader reader)
    {
        var index = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                index = reader.GetInt32();
            }
            else if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                var block = index < _blocks.Count ? _blocks[index] : (Kind: OtherBlock, Tool: -1);
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("text"u8))
                    {
                        reader.Read();
                        if (reader.ValueSpan.Length > 0)
                        {
                            Emit(StreamEvent.Text(Text(ref reader)));
                        }
                    }
                    else if (reader.ValueTextEquals("partial_json"u8))
                    {
                        reader.Read();
                        if (reader.ValueSpan.Length == 0)
                        {
                            continue;
                        }

                        if (block.Kind == JsonAnswerBlock)
                        {
                            Emit(StreamEvent.Text(Text(ref reader)));
                        }
                        else if (block.Kind == ToolBlock)
                        {
                            Emit(StreamEvent.ToolArguments(block.Tool, Text(ref reader)));
                        }
                    }
                    else if (reader.ValueTextEquals("thinking"u8))
                    {
                        reader.Read();
                        if (reader.ValueSpan.Length > 0)
                        {
                            Emit(StreamEvent.Reasoning(Text(ref reader)));
                        }
                    }
                    else if (reader.ValueTextEquals("signature"u8))
                    {
                        reader.Read();
                        Emit(StreamEvent.Signature(Text(ref reader)));
                    }
                    else
                    {
                        reader.Read();
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

    private void ReadMessageDelta(ref Utf8JsonReader reader)
    {
        var finish = FinishReason.None;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("stop_reason"u8))
                    {
                        reader.Read();
                        if (reader.TokenType == JsonTokenType.String)
                        {
                            finish = AnthropicErrors.MapStopReason(reader.GetString(), jsonTool);
                        }
                    }
                    else
                    {
                        reader.Read();
                        reader.Skip();
                    }
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                ReadUsage(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (finish != FinishReason.None)
        {
            Emit(StreamEvent.Finished(finish));
        }

        Emit(StreamEvent.Counted(_usage));
    }

    // Counts are cumulative; message_delta repeats or updates what message_start said.
    private void ReadUsage(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }

        long? input = null;
        long? cacheWrite = null;
        long? cacheRead = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("input_tokens"u8))
            {
                reader.Read();
                input = Count(ref reader);
            }
            else if (reader.ValueTextEquals("output_tokens"u8))
            {
                reader.Read();
                _usage.Output = Count(ref reader) ?? _usage.Output;
            }
            else if (reader.ValueTextEquals("cache_creation_input_tokens"u8))
            {
                reader.Read();
                cacheWrite = Count(ref reader);
            }
            else if (reader.ValueTextEquals("cache_read_input_tokens"u8))
            {
                reader.Read();
                cacheRead = Count(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (input is not null || cacheWrite is not null || cacheRead is not null)
        {
            var uncached = input ?? (_usage.Input - _usage.CacheRead - _usage.CacheWrite);
            _usage.CacheWrite = cacheWrite ?? _usage.CacheWrite;
            _usage.CacheRead = cacheRead ?? _usage.CacheRead;
            _usage.Input = uncached + _usage.CacheRead + _usage.CacheWrite;
        }

        _usage.Reported = true;
    }

    private static long? Count(ref Utf8JsonReader reader)
        => reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0 ? value : null;
}
