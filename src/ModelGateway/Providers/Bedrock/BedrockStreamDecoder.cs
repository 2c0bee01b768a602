using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using Amazon.Runtime.EventStreams;
using ModelGateway.Canonical;
using ModelGateway.Configuration;

namespace ModelGateway.Providers.Bedrock;

/// <summary>
/// Decodes ConverseStream's binary <c>application/vnd.amazon.eventstream</c> body into canonical events,
/// pulled on the relay's loop. Messages are framed and checked (both CRCs) by AWSSDK.Core's
/// <see cref="EventStreamMessage"/>; each event's JSON payload (<c>messageStart</c>, <c>contentBlockStart</c>,
/// <c>contentBlockDelta</c>, <c>contentBlockStop</c>, <c>messageStop</c>, <c>metadata</c>) becomes zero or more
/// events, and exception messages become classified errors. Tool calls get their own 0-based index.
/// </summary>
internal sealed class BedrockStreamDecoder : IStreamDecoder
{
    // Prelude: total length, headers length, prelude CRC; the message ends with its own CRC.
    private const int PreludeLength = 12;
    private const int MinimumMessageLength = PreludeLength + 4;

    private const byte TextBlock = 1;
    private const byte ToolBlock = 2;
    private const byte JsonAnswerBlock = 3;

    private readonly Stream _body;
    private readonly Deployment _deployment;
    private readonly bool _jsonTool;
    private readonly int _maxMessageBytes;
    private readonly ArrayBufferWriter<byte> _scratch = new(512);

    // Per content block index: its kind and, for tool calls, the tool index.
    private readonly Dictionary<int, (byte Kind, int Tool)> _blocks = [];

    private byte[] _buffer;
    private int _start;
    private int _end;
    private bool _ended;
    private StreamEvent[] _pending = new StreamEvent[4];
    private int _head;
    private int _count;
    private int _tools;
    private TokenUsage _usage;

    public BedrockStreamDecoder(Stream body, Deployment deployment, bool jsonTool, int maxMessageBytes)
    {
        _body = body;
        _deployment = deployment;
        _jsonTool = jsonTool;
        _maxMessageBytes = Math.Max(maxMessageBytes, 4096);
        _buffer = ArrayPool<byte>.Shared.Rent(4096);
    }

    /// <summary>True once <c>metadata</c>, the stream's last event, has arrived.</summary>
    public bool IsComplete { get; private set; }

    public bool TryRead(out StreamEvent streamEvent)
    {
        while (true)
        {
            if (_head < _count)
            {
                streamEvent = _pending[_head++];
                return true;
            }

            if (IsComplete || !TryTakeMessage(out var message))
            {
                streamEvent = default;
                return false;
            }

            // The previous message's events have all been read, so their text may be overwritten.
            _head = 0;
            _count = 0;
            _scratch.ResetWrittenCount();
            try
            {
                Decode(message);
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException("The upstream sent an event whose payload is not the JSON Converse defines.", ex);
            }
        }
    }

    public async ValueTask<bool> FillAsync(CancellationToken cancellationToken)
    {
        if (_ended)
        {
            return false;
        }

        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(_buffer.Length * 2);
            _buffer.AsSpan(0, _end).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        var read = await _body.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
        if (read == 0)
        {
            // A message cut in half is a broken stream; IsComplete stays false and the relay says so.
            _ended = true;
            return false;
        }

        _end += read;
        return true;
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private bool TryTakeMessage(out EventStreamMessage message)
    {
        message = null!;
        var available = _end - _start;
        if (available < PreludeLength)
        {
            return false;
        }

        var total = BinaryPrimitives.ReadUInt32BigEndian(_buffer.AsSpan(_start));
        if (total < MinimumMessageLength || total > _maxMessageBytes)
        {
            throw new InvalidDataException($"An event-stream message claims {total} bytes; the limit is {_maxMessageBytes}.");
        }

        if (available < total)
        {
            return false;
        }

        if (_start > 0)
        {
            // AWSSDK.Core 4.1.1 checks the message CRC of a message that does not start at offset 0 over the wrong
            // bytes, so every message is moved to the front first (a few hundred bytes, already in cache).
            _buffer.AsSpan(_start, available).CopyTo(_buffer);
            _end = available;
            _start = 0;
        }

        try
        {
            message = EventStreamMessage.FromBuffer(_buffer, 0, (int)total);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A CRC that does not verify, or headers that do not parse: nothing after it can be trusted.
            throw new InvalidDataException("The upstream sent an event-stream message that does not verify: " + ex.Message, ex);
        }

        _start += (int)total;
        return true;
    }

    private void Decode(EventStreamMessage message)
    {
        var messageType = Header(message, ":message-type") ?? "event";
        if (messageType == "exception")
        {
            Emit(StreamEvent.Failed(BedrockErrors.InStream(Header(message, ":exception-type"), message.Payload, _deployment)));
            return;
        }

        if (messageType == "error")
        {
            Emit(StreamEvent.Failed(BedrockErrors.StreamError(Header(message, ":error-code"), Header(message, ":error-message"), _deployment)));
            return;
        }

        var payload = message.Payload;
        switch (Header(message, ":event-type"))
        {
            case "contentBlockDelta":
                ReadDelta(payload);
                break;
            case "contentBlockStart":
                ReadBlockStart(payload);
                break;
            case "messageStart":
                Emit(StreamEvent.Started(null, null));
                break;
            case "messageStop":
                ReadMessageStop(payload);
                break;
            case "metadata":
                ReadMetadata(payload);
                IsComplete = true;
                break;

            // contentBlockStop and event types added later carry nothing to relay.
        }
    }

    private static string? Header(EventStreamMessage message, string name)
        => message.Headers.TryGetValue(name, out var header) && header.HeaderType == EventStreamHeaderType.String ? header.AsString() : null;

    private void ReadBlockStart(byte[] payload)
    {
        var reader = Open(payload);
        var index = 0;
        string? id = null;
        string? name = null;
        var isTool = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("contentBlockIndex"u8))
            {
                reader.Read();
                index = reader.GetInt32();
            }
            else if (reader.ValueTextEquals("start"u8))
            {
                reader.Read();
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (!reader.ValueTextEquals("toolUse"u8))
                    {
                        reader.Read();
                        reader.Skip();
                        continue;
                    }

                    isTool = true;
                    reader.Read();
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("toolUseId"u8))
                        {
                            reader.Read();
                            id = reader.GetString();
                        }
                        else if (reader.ValueTextEquals("name"u8))
                        {
                            reader.Read();
                            name = reader.GetString();
                        }
                        else
                        {
                            reader.Read();
                            reader.Skip();
                        }
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (!isTool)
        {
            return;
        }

        if (_jsonTool && name == BedrockRequestMapper.JsonToolName)
        {
            _blocks[index] = (JsonAnswerBlock, -1);
            return;
        }

        var tool = _tools++;
        _blocks[index] = (ToolBlock, tool);
        Emit(StreamEvent.ToolCall(tool, id ?? $"tooluse_{tool}", name ?? string.Empty));
    }

    private void ReadDelta(byte[] payload)
    {
        var reader = Open(payload);
        var index = 0;

        // The index may come after the delta, so the delta is read in a second pass over the same payload.
        var delta = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("contentBlockIndex"u8))
            {
                reader.Read();
                index = reader.GetInt32();
            }
            else if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                delta = (int)reader.TokenStartIndex;
                reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (delta < 0)
        {
            return;
        }

        var block = _blocks.TryGetValue(index, out var known) ? known : (Kind: TextBlock, Tool: -1);
        reader = Open(payload.AsSpan(delta));
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
            else if (reader.ValueTextEquals("toolUse"u8))
            {
                reader.Read();
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (!reader.ValueTextEquals("input"u8))
                    {
                        reader.Read();
                        reader.Skip();
                        continue;
                    }

                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String || reader.ValueSpan.Length == 0)
                    {
                        reader.Skip();
                    }
                    else if (block.Kind == JsonAnswerBlock)
                    {
                        Emit(StreamEvent.Text(Text(ref reader)));
                    }
                    else if (block.Kind == ToolBlock)
                    {
                        Emit(StreamEvent.ToolArguments(block.Tool, Text(ref reader)));
                    }
                }
            }
            else if (reader.ValueTextEquals("reasoningContent"u8))
            {
                reader.Read();
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("text"u8))
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
                        // redactedContent: encrypted reasoning an OpenAI client cannot use.
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

    private void ReadMessageStop(byte[] payload)
    {
        var reader = Open(payload);
        var finish = FinishReason.None;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("stopReason"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    finish = BedrockErrors.MapStopReason(reader.GetString(), _jsonTool);
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        Emit(StreamEvent.Finished(finish == FinishReason.None ? FinishReason.Other : finish));
    }

    private void ReadMetadata(byte[] payload)
    {
        var reader = Open(payload);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                reader.Skip();
                continue;
            }

            reader.Read();
            long input = 0;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("inputTokens"u8))
                {
                    reader.Read();
                    input = Count(ref reader);
                }
                else if (reader.ValueTextEquals("outputTokens"u8))
                {
                    reader.Read();
                    _usage.Output = Count(ref reader);
                }
                else if (reader.ValueTextEquals("cacheReadInputTokens"u8))
                {
                    reader.Read();
                    _usage.CacheRead = Count(ref reader);
                }
                else if (reader.ValueTextEquals("cacheWriteInputTokens"u8))
                {
                    reader.Read();
                    _usage.CacheWrite = Count(ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            // Canonical input counts the cache reads and writes that Bedrock reports beside it.
            _usage.Input = input + _usage.CacheRead + _usage.CacheWrite;
            _usage.Reported = true;
            Emit(StreamEvent.Counted(_usage));
        }
    }

    private static Utf8JsonReader Open(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 128 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("A ConverseStream event payload is not a JSON object.");
        }

        return reader;
    }

    private static long Count(ref Utf8JsonReader reader)
        => reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0 ? value : 0;

    private void Emit(in StreamEvent streamEvent)
    {
        if (_count == _pending.Length)
        {
            Array.Resize(ref _pending, _pending.Length * 2);
        }

        _pending[_count++] = streamEvent;
    }

    /// <summary>Copies the string the reader is on, unescaped, into the scratch buffer (valid until the next message).</summary>
    private ReadOnlyMemory<byte> Text(ref Utf8JsonReader reader)
    {
        // The escaped length bounds the unescaped one.
        var span = _scratch.GetSpan(reader.ValueSpan.Length);
        var written = reader.CopyString(span);
        var start = _scratch.WrittenCount;
        _scratch.Advance(written);
        return _scratch.WrittenMemory[start..];
    }
}
