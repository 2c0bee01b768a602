using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Anthropic;

/// <summary>
/// A Messages API answer: the <c>message</c> object, or the named event sequence <c>message_start</c>,
/// <c>content_block_start</c>, <c>ping</c>, <c>content_block_delta</c>..., <c>content_block_stop</c>,
/// <c>message_delta</c>, <c>message_stop</c>. Blocks come as thinking, text, then tool_use.
/// </summary>
internal sealed class AnthropicAnswer : IWireAnswer
{
    private readonly Reply _reply;
    private readonly string _model;
    private readonly string _id = WireIds.AnthropicMessage();
    private readonly string _requestId;
    private readonly string? _stopSequence;
    private readonly DateTimeOffset _now;
    private readonly UpstreamBehavior _behavior;
    private readonly bool _vertex;

    // vertex: Claude on Vertex AI, where a 429 is Vertex's own quota error, in Google's shape.
    public AnthropicAnswer(UpstreamBehavior behavior, Reply reply, RequestFacts facts, string requestId, DateTimeOffset now, bool vertex = false)
    {
        _vertex = vertex;
        _behavior = behavior;
        _reply = reply;
        _model = facts.Model;
        _requestId = requestId;
        _now = now;
        if (StopReason == "stop_sequence")
        {
            _stopSequence = facts.StopSequences.Count > 0 ? facts.StopSequences[0] : "\n\nHuman:";
        }
    }

    private string StopReason => _reply.StopOverride ?? _reply.Stop switch
    {
        StopKind.MaxTokens => "max_tokens",
        StopKind.ToolUse => "tool_use",
        StopKind.Refusal => "refusal",
        _ => "end_turn",
    };

    public byte[] Body() => JsonBytes.Write(this, static (writer, self) =>
    {
        var reply = self._reply;
        self.WriteMessageHead(writer);
        writer.WriteStartArray("content"u8);
        if (reply.Thinking is not null)
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "thinking"u8);
            JsonBytes.Text(writer, "thinking"u8, reply.Thinking);
            writer.WriteString("signature"u8, reply.Signature);
            writer.WriteEndObject();
        }

        if (reply.Text is not null)
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "text"u8);
            JsonBytes.Text(writer, "text"u8, reply.Text);
            writer.WriteEndObject();
        }

        foreach (var call in reply.ToolCalls)
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "tool_use"u8);
            writer.WriteString("id"u8, call.Id);
            writer.WriteString("name"u8, call.Name);
            JsonBytes.RawOrString(writer, "input"u8, call.Arguments);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteString("stop_reason"u8, self.StopReason);
        self.WriteStopSequence(writer);
        writer.WritePropertyName("usage"u8);
        self.WriteUsage(writer, reply.OutputTokens);
        writer.WriteEndObject();
    });

    public StreamPlan Stream()
    {
        var reply = _reply;
        var plan = new StreamPlan(Sse.ContentType)
        {
            MalformedEvent = "event: content_block_delta\ndata: {not json\n\n"u8.ToArray(),
            ErrorEvent = AnthropicErrors.StreamEvent(_behavior),
        };
        plan.Add(Event("message_start", this, static (writer, self) =>
        {
            writer.WriteString("type"u8, "message_start"u8);
            writer.WritePropertyName("message"u8);
            self.WriteMessageHead(writer);
            writer.WriteStartArray("content"u8);
            writer.WriteEndArray();
            writer.WriteNull("stop_reason"u8);
            writer.WriteNull("stop_sequence"u8);
            writer.WritePropertyName("usage"u8);
            self.WriteUsage(writer, outputTokens: 1);
            writer.WriteEndObject();
        }));

        var index = 0;
        var pinged = false;
        void Start(int block, Action<Utf8JsonWriter> contentBlock)
        {
            plan.Add(Event("content_block_start", (block, contentBlock), static (writer, state) =>
            {
                writer.WriteString("type"u8, "content_block_start"u8);
                writer.WriteNumber("index"u8, state.block);
                writer.WritePropertyName("content_block"u8);
                writer.WriteStartObject();
                state.contentBlock(writer);
                writer.WriteEndObject();
            }));
            if (!pinged)
            {
                // Anthropic sends its first keep-alive right after the first block opens.
                plan.Add(Ping);
                pinged = true;
            }
        }

        if (reply.Thinking is not null)
        {
            Start(index, static writer =>
            {
                writer.WriteString("type"u8, "thinking"u8);
                writer.WriteString("thinking"u8, ""u8);
                writer.WriteString("signature"u8, ""u8);
            });
            foreach (var piece in reply.ThinkingPieces)
            {
                plan.AddPiece(Delta(index, "thinking_delta"u8, "thinking"u8, piece));
            }

            plan.Add(Delta(index, "signature_delta"u8, "signature"u8, reply.Signature));
            plan.Add(Stop(index++));
        }

        if (reply.Text is not null)
        {
            Start(index, static writer =>
            {
                writer.WriteString("type"u8, "text"u8);
                writer.WriteString("text"u8, ""u8);
            });
            foreach (var piece in reply.TextPieces)
            {
                plan.AddPiece(Delta(index, "text_delta"u8, "text"u8, piece));
            }

            plan.Add(Stop(index++));
        }

        foreach (var call in reply.ToolCalls)
        {
            Start(index, writer =>
            {
                writer.WriteString("type"u8, "tool_use"u8);
                writer.WriteString("id"u8, call.Id);
                writer.WriteString("name"u8, call.Name);
                writer.WriteStartObject("input"u8);
                writer.WriteEndObject();
            });
            // Anthropic opens every tool input with an empty fragment.
            plan.Add(Delta(index, "input_json_delta"u8, "partial_json"u8, string.Empty));
            foreach (var piece in call.Pieces)
            {
                plan.AddPiece(Delta(index, "input_json_delta"u8, "partial_json"u8, piece));
            }

            plan.Add(Stop(index++));
        }

        if (!pinged)
        {
            plan.Add(Ping);
        }

        plan.Add(Event("message_delta", this, static (writer, self) =>
        {
            writer.WriteString("type"u8, "message_delta"u8);
            writer.WriteStartObject("delta"u8);
            writer.WriteString("stop_reason"u8, self.StopReason);
            self.WriteStopSequence(writer);
            writer.WriteEndObject();
            writer.WritePropertyName("usage"u8);
            self.WriteDeltaUsage(writer);
        }));
        plan.AddTerminator(Sse.Event("message_stop", """{"type":"message_stop"}"""u8));
        return plan;
    }

    public WireError Error(UpstreamBehavior behavior) =>
        _vertex && behavior.StatusCode == 429 && behavior.ErrorType is null
            ? Gemini.GoogleErrors.ForBehavior(behavior, _model, vertex: true)
            : AnthropicErrors.ForBehavior(behavior, _model, _requestId, _now);

    private static byte[] Ping => Sse.Event("ping", """{"type": "ping"}"""u8);

    private static byte[] Event<TState>(string name, TState state, Action<Utf8JsonWriter, TState> write) =>
        Sse.Event(name, JsonBytes.Write((state, write), static (writer, s) =>
        {
            writer.WriteStartObject();
            s.write(writer, s.state);
            writer.WriteEndObject();
        }));

    private static byte[] Delta(int index, ReadOnlySpan<byte> deltaType, ReadOnlySpan<byte> field, string value)
    {
        using var buffer = new PooledBufferWriter(256);
        using (var writer = new Utf8JsonWriter(buffer, JsonFormat.WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "content_block_delta"u8);
            writer.WriteNumber("index"u8, index);
            writer.WriteStartObject("delta"u8);
            writer.WriteString("type"u8, deltaType);
            JsonBytes.Text(writer, field, value);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        return Sse.Event("content_block_delta", buffer.WrittenSpan);
    }

    private static byte[] Stop(int index) => Event("content_block_stop", index, static (writer, index) =>
    {
        writer.WriteString("type"u8, "content_block_stop"u8);
        writer.WriteNumber("index"u8, index);
    });

    /// <summary>Writes <c>{"model":..,"id":..,"type":"message","role":"assistant"</c>, leaving the object open.</summary>
    private void WriteMessageHead(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("model"u8, _model);
        writer.WriteString("id"u8, _id);
        writer.WriteString("type"u8, "message"u8);
        writer.WriteString("role"u8, "assistant"u8);
    }

    private void WriteStopSequence(Utf8JsonWriter writer)
    {
        if (_stopSequence is null)
        {
            writer.WriteNull("stop_sequence"u8);
        }
        else
        {
            writer.WriteString("stop_sequence"u8, _stopSequence);
        }
    }

    private void WriteUsage(Utf8JsonWriter writer, int outputTokens)
    {
        writer.WriteStartObject();
        writer.WriteNumber("input_tokens"u8, _reply.InputTokens);
        writer.WriteNumber("cache_creation_input_tokens"u8, _reply.CacheWriteTokens);
        writer.WriteNumber("cache_read_input_tokens"u8, _reply.CacheReadTokens);
        writer.WriteStartObject("cache_creation"u8);
        writer.WriteNumber("ephemeral_5m_input_tokens"u8, _reply.CacheWriteTokens);
        writer.WriteNumber("ephemeral_1h_input_tokens"u8, 0);
        writer.WriteEndObject();
        writer.WriteNumber("output_tokens"u8, outputTokens);
        writer.WriteString("service_tier"u8, "standard"u8);
        writer.WriteEndObject();
    }

    /// <summary><c>message_delta</c> usage: cumulative counts, the input side repeated from <c>message_start</c>.</summary>
    private void WriteDeltaUsage(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteNumber("input_tokens"u8, _reply.InputTokens);
        writer.WriteNumber("cache_creation_input_tokens"u8, _reply.CacheWriteTokens);
        writer.WriteNumber("cache_read_input_tokens"u8, _reply.CacheReadTokens);
        writer.WriteNumber("output_tokens"u8, _reply.OutputTokens);
        writer.WriteEndObject();
    }
}
