using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Forwarding;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Providers.Anthropic;
using ModelGateway.Routing;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Anthropic;

/// <summary>
/// Writes canonical events as Anthropic's Messages stream, in the exact order Anthropic sends:
/// <c>message_start</c> (with usage: the upstream's, or the gateway's input estimate when it has not said),
/// then per content block <c>content_block_start</c>, its deltas (<c>text_delta</c>, <c>thinking_delta</c>
/// and a <c>signature_delta</c>, <c>input_json_delta</c>) and <c>content_block_stop</c>, one <c>ping</c> after
/// the first block opens, then <c>message_delta</c> (stop reason, cumulative usage) and <c>message_stop</c>.
/// Reasoning that did not come from Anthropic is signed with <see cref="AnthropicRequestMapper.GatewaySignaturePrefix"/>,
/// so the mapper leaves it out if the client sends it back to an Anthropic deployment.
/// </summary>
internal sealed class MessagesStreamEncoder(GatewayRequest request, string model, bool omitThinking) : IStreamEncoder, IPassThroughObserver
{
    private const string GatewaySignature = AnthropicRequestMapper.GatewaySignaturePrefix + "unsigned";

    private readonly Dictionary<int, int> _toolBlocks = [];
    private bool _started;
    private bool _pinged;
    private int _nextIndex;
    private BlockKind _open;
    private int _openIndex;
    private bool _openSigned;
    private FinishReason _finish;
    private TokenUsage _usage;
    private bool _hasUsage;
    private long _outputBytes;

    // What a pass-through segment before this one already told the client.
    private TokenUsage _earlier;

    private enum BlockKind : byte
    {
        None,
        Text,
        Thinking,
        Tool,
        Other,
    }

    /// <summary>The message id the client sees; the upstream's when it has one.</summary>
    public string? Id { get; private set; }

    public void Write(in StreamEvent streamEvent, IBufferWriter<byte> output)
    {
        switch (streamEvent.Kind)
        {
            case StreamEventKind.Started:
                Id ??= MessageId(streamEvent.Id);
                break;
            case StreamEventKind.TextDelta:
                Open(BlockKind.Text, output);
                _outputBytes += streamEvent.Utf8.Length;
                WriteDelta(output, "text_delta"u8, "text"u8, streamEvent.Utf8.Span);
                break;
            case StreamEventKind.ReasoningDelta:
                Open(BlockKind.Thinking, output);
                _outputBytes += streamEvent.Utf8.Length;
                if (!omitThinking)
                {
                    WriteDelta(output, "thinking_delta"u8, "thinking"u8, streamEvent.Utf8.Span);
                }

                break;
            case StreamEventKind.ReasoningSignature:
                Open(BlockKind.Thinking, output);
                _openSigned = true;
                WriteDelta(output, "signature_delta"u8, "signature"u8, streamEvent.Utf8.Span);
                break;
            case StreamEventKind.ToolCallStart:
                Close(output);
                _toolBlocks[streamEvent.Index] = _nextIndex;
                OpenTool(streamEvent.Id ?? $"toolu_gw{streamEvent.Index}", streamEvent.Name ?? string.Empty, output);
                break;
            case StreamEventKind.ToolCallDelta when _toolBlocks.TryGetValue(streamEvent.Index, out var block):
                // Providers stream one call after another; a late fragment for an earlier call still names its own block.
                _outputBytes += streamEvent.Utf8.Length;
                WriteDelta(output, block, "input_json_delta"u8, "partial_json"u8, streamEvent.Utf8.Span);
                break;
            case StreamEventKind.Finish:
                Close(output);
                _finish = streamEvent.Finish;
                break;
            case StreamEventKind.Usage:
                _usage = streamEvent.Usage;
                _hasUsage = true;
                break;
        }
    }

    public void Complete(IBufferWriter<byte> output)
    {
        EnsureStarted(output);
        Close(output);
        var usage = FinalUsage();
        WriteEvent(output, "message_delta"u8, json =>
        {
            json.WriteString("type"u8, "message_delta"u8);
            json.WriteStartObject("delta"u8);
            json.WriteString("stop_reason"u8, MessagesResponseWriter.StopReason(_finish));
            json.WriteNull("stop_sequence"u8);
            json.WriteEndObject();
            MessagesResponseWriter.WriteUsage(json, usage);
        });
        WriteEvent(output, "message_stop"u8, static json => json.WriteString("type"u8, "message_stop"u8));
    }

    public void Fail(ApiError error, IBufferWriter<byte> output) => AnthropicErrorShape.WriteEvent(error, request.RequestId, output);

    /// <summary>Follows a pass-through segment, so a continuation carries on in the same message and block.</summary>
    public void Observe(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IContentSink? text)
    {
        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 128 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return;
            }

            var name = MessagesEventInspector.EventName(eventName, data);
            if (name.SequenceEqual("message_start"u8))
            {
                _started = true;
                if (MessagesEventInspector.FindObject(ref reader, "message"u8))
                {
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("id"u8) && reader.Read() && reader.TokenType == JsonTokenType.String)
                        {
                            Id = reader.GetString();
                        }
                        else if (reader.ValueTextEquals("usage"u8) && reader.Read())
                        {
                            MessagesEventInspector.ReadUsage(ref reader, ref _earlier);
                        }
                        else
                        {
                            reader.Skip();
                        }
                    }
                }
            }
            else if (name.SequenceEqual("content_block_start"u8))
            {
                var facts = MessagesEventInspector.ReadBlockStart(ref reader);
                _open = facts.Type switch
                {
                    MessagesEventInspector.Block.Text => BlockKind.Text,
                    MessagesEventInspector.Block.Thinking => BlockKind.Thinking,
                    _ => BlockKind.Other,
                };
                _openIndex = facts.Index;
                _openSigned = false;
                _nextIndex = Math.Max(_nextIndex, facts.Index + 1);
                _pinged = true;
            }
            else if (name.SequenceEqual("content_block_delta"u8) && _open == BlockKind.Text && text is not null)
            {
                if (MessagesEventInspector.FindObject(ref reader, "delta"u8))
                {
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("text"u8) && reader.Read() && reader.TokenType == JsonTokenType.String)
                        {
                            text.Append(ref reader);
                        }
                        else
                        {
                            reader.Skip();
                        }
                    }
                }
            }
            else if (name.SequenceEqual("content_block_delta"u8) && _open == BlockKind.Thinking)
            {
                _openSigned |= data.IndexOf("\"signature_delta\""u8) >= 0;
            }
            else if (name.SequenceEqual("content_block_stop"u8))
            {
                _open = BlockKind.None;
            }
            else if (name.SequenceEqual("message_delta"u8) && MessagesEventInspector.FindObject(ref reader, "usage"u8))
            {
                MessagesEventInspector.ReadUsageBody(ref reader, ref _earlier);
            }
        }
        catch (JsonException)
        {
            // The relay's inspector refuses a malformed event before this sees it.
        }
    }

    private TokenUsage FinalUsage()
    {
        var usage = _hasUsage ? _usage : default;
        if (!_hasUsage || usage.Output == 0)
        {
            usage.Output = (_outputBytes + 3) / 4;
        }

        if (usage.Input == 0)
        {
            usage.Input = _earlier.Input > 0 ? _earlier.Input : EstimatedInput();
            usage.CacheRead = _earlier.CacheRead;
            usage.CacheWrite = _earlier.CacheWrite;
        }

        // A continuation's answer adds to what the broken segment already produced.
        usage.Output += _earlier.Output;
        return usage;
    }

    private long EstimatedInput() => request.Decision?.EstimatedInputTokens ?? TokenEstimator.Estimate(request.Info);

    private void EnsureStarted(IBufferWriter<byte> output)
    {
        if (_started)
        {
            return;
        }

        _started = true;
        Id ??= MessageId(null);
        var usage = _hasUsage && _usage.Input > 0 ? _usage : new TokenUsage { Input = EstimatedInput() };
        usage.Output = 1;
        WriteEvent(output, "message_start"u8, json =>
        {
            json.WriteString("type"u8, "message_start"u8);
            json.WriteStartObject("message"u8);
            json.WriteString("id"u8, Id);
            json.WriteString("type"u8, "message"u8);
            json.WriteString("role"u8, "assistant"u8);
            json.WriteString("model"u8, model);
            json.WriteStartArray("content"u8);
            json.WriteEndArray();
            json.WriteNull("stop_reason"u8);
            json.WriteNull("stop_sequence"u8);
            MessagesResponseWriter.WriteUsage(json, usage);
            json.WriteEndObject();
        });
    }

    private void Open(BlockKind kind, IBufferWriter<byte> output)
    {
        if (_open == kind)
        {
            return;
        }

        Close(output);
        EnsureStarted(output);
        _open = kind;
        _openIndex = _nextIndex++;
        _openSigned = false;
        var index = _openIndex;
        WriteEvent(output, "content_block_start"u8, json =>
        {
            json.WriteString("type"u8, "content_block_start"u8);
            json.WriteNumber("index"u8, index);
            json.WriteStartObject("content_block"u8);
            if (kind == BlockKind.Thinking)
            {
                json.WriteString("type"u8, "thinking"u8);
                json.WriteString("thinking"u8, ""u8);
                json.WriteString("signature"u8, ""u8);
            }
            else
            {
                json.WriteString("type"u8, "text"u8);
                json.WriteString("text"u8, ""u8);
            }

            json.WriteEndObject();
        });
        Ping(output);
    }

    private void OpenTool(string id, string name, IBufferWriter<byte> output)
    {
        EnsureStarted(output);
        _open = BlockKind.Tool;
        _openIndex = _nextIndex++;
        var index = _openIndex;
        WriteEvent(output, "content_block_start"u8, json =>
        {
            json.WriteString("type"u8, "content_block_start"u8);
            json.WriteNumber("index"u8, index);
            json.WriteStartObject("content_block"u8);
            json.WriteString("type"u8, "tool_use"u8);
            json.WriteString("id"u8, id);
            json.WriteString("name"u8, name);
            json.WriteStartObject("input"u8);
            json.WriteEndObject();
            json.WriteEndObject();
        });
        Ping(output);
    }

    private void Ping(IBufferWriter<byte> output)
    {
        if (!_pinged)
        {
            _pinged = true;
            output.Write("event: ping\ndata: {\"type\":\"ping\"}\n\n"u8);
        }
    }

    private void Close(IBufferWriter<byte> output)
    {
        if (_open == BlockKind.None)
        {
            return;
        }

        if (_open == BlockKind.Thinking && !_openSigned)
        {
            // Anthropic clients expect every thinking block signed; this one never was.
            WriteDelta(output, "signature_delta"u8, "signature"u8, System.Text.Encoding.UTF8.GetBytes(GatewaySignature));
        }

        var index = _openIndex;
        _open = BlockKind.None;
        WriteEvent(output, "content_block_stop"u8, json =>
        {
            json.WriteString("type"u8, "content_block_stop"u8);
            json.WriteNumber("index"u8, index);
        });
    }

    private void WriteDelta(IBufferWriter<byte> output, ReadOnlySpan<byte> deltaType, ReadOnlySpan<byte> field, ReadOnlySpan<byte> utf8)
        => WriteDelta(output, _openIndex, deltaType, field, utf8);

    private static void WriteDelta(IBufferWriter<byte> output, int index, ReadOnlySpan<byte> deltaType, ReadOnlySpan<byte> field, ReadOnlySpan<byte> utf8)
    {
        output.Write("event: content_block_delta\ndata: "u8);
        using (var json = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            json.WriteStartObject();
            json.WriteString("type"u8, "content_block_delta"u8);
            json.WriteNumber("index"u8, index);
            json.WriteStartObject("delta"u8);
            json.WriteString("type"u8, deltaType);
            json.WriteString(field, utf8);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        output.Write("\n\n"u8);
    }

    private static void WriteEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> name, Action<Utf8JsonWriter> body)
    {
        output.Write("event: "u8);
        output.Write(name);
        output.Write("\ndata: "u8);
        using (var json = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            json.WriteStartObject();
            body(json);
            json.WriteEndObject();
        }

        output.Write("\n\n"u8);
    }

    /// <summary>Anthropic message ids start <c>msg_</c>; another provider's id keeps its characters behind that.</summary>
    internal static string MessageId(string? upstream)
        => upstream is null ? "msg_" + Guid.NewGuid().ToString("N")
            : upstream.StartsWith("msg_", StringComparison.Ordinal) ? upstream
            : "msg_" + upstream.Replace("chatcmpl-", string.Empty, StringComparison.Ordinal);
}
