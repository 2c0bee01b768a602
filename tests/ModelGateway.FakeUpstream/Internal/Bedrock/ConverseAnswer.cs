using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Bedrock;

/// <summary>
/// A Converse answer: the <c>output.message</c> body, or the ConverseStream event messages <c>messageStart</c>,
/// <c>contentBlockStart</c> (tool use only, as Bedrock sends it), <c>contentBlockDelta</c> (<c>reasoningContent</c>,
/// <c>text</c>, <c>toolUse.input</c>), <c>contentBlockStop</c>, <c>messageStop</c> and <c>metadata</c>.
/// Blocks come as reasoning, text, then tool use. Event payloads carry Bedrock's <c>p</c> padding field.
/// </summary>
internal sealed class ConverseAnswer : IWireAnswer
{
    private const string Padding = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

    private readonly UpstreamBehavior _behavior;
    private readonly Reply _reply;
    private readonly string _requestId;

    public ConverseAnswer(UpstreamBehavior behavior, Reply reply, string requestId)
    {
        _behavior = behavior;
        _reply = reply;
        _requestId = requestId;
    }

    private string StopReason => _reply.StopOverride ?? _reply.Stop switch
    {
        StopKind.MaxTokens => "max_tokens",
        StopKind.ToolUse => "tool_use",
        StopKind.Refusal => "content_filtered",
        _ => "end_turn",
    };

    /// <summary>What the behaviour's delays add up to: the fake's honest <c>latencyMs</c>.</summary>
    private long LatencyMs => Math.Max(1, (long)(_behavior.HeaderDelay + _behavior.FirstChunkDelay
        + (_behavior.ChunkDelay * (_reply.ThinkingPieces.Length + _reply.TextPieces.Length))).TotalMilliseconds);

    public byte[] Body() => JsonBytes.Write(this, static (writer, self) =>
    {
        var reply = self._reply;
        writer.WriteStartObject();
        writer.WriteStartObject("output"u8);
        writer.WriteStartObject("message"u8);
        writer.WriteString("role"u8, "assistant"u8);
        writer.WriteStartArray("content"u8);
        if (reply.Thinking is not null)
        {
            writer.WriteStartObject();
            writer.WriteStartObject("reasoningContent"u8);
            writer.WriteStartObject("reasoningText"u8);
            JsonBytes.Text(writer, "text"u8, reply.Thinking);
            writer.WriteString("signature"u8, reply.Signature);
            writer.WriteEndObject();
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        if (reply.Text is not null)
        {
            writer.WriteStartObject();
            JsonBytes.Text(writer, "text"u8, reply.Text);
            writer.WriteEndObject();
        }

        foreach (var call in reply.ToolCalls)
        {
            writer.WriteStartObject();
            writer.WriteStartObject("toolUse"u8);
            writer.WriteString("toolUseId"u8, call.Id);
            writer.WriteString("name"u8, call.Name);
            JsonBytes.RawOrString(writer, "input"u8, call.Arguments);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        writer.WriteEndObject();
        writer.WriteString("stopReason"u8, self.StopReason);
        writer.WritePropertyName("usage"u8);
        self.WriteUsage(writer);
        writer.WriteStartObject("metrics"u8);
        writer.WriteNumber("latencyMs"u8, self.LatencyMs);
        writer.WriteEndObject();
        writer.WriteEndObject();
    });

    public StreamPlan Stream()
    {
        var reply = _reply;
        var plan = new StreamPlan(EventStream.ContentType) { ErrorEvent = BedrockErrors.StreamException(_behavior) };
        plan.Add(Event("messageStart", static writer => writer.WriteString("role"u8, "assistant"u8)));
        var index = 0;
        byte[]? firstDelta = null;
        if (reply.Thinking is not null)
        {
            foreach (var piece in reply.ThinkingPieces)
            {
                var block = index;
                plan.AddPiece(Delta(block, writer =>
                {
                    writer.WriteStartObject("reasoningContent"u8);
                    JsonBytes.Text(writer, "text"u8, piece);
                    writer.WriteEndObject();
                }));
            }

            var signatureBlock = index;
            plan.Add(Delta(signatureBlock, writer =>
            {
                writer.WriteStartObject("reasoningContent"u8);
                writer.WriteString("signature"u8, reply.Signature);
                writer.WriteEndObject();
            }));
            plan.Add(Stop(index++));
        }

        if (reply.Text is not null)
        {
            foreach (var piece in reply.TextPieces)
            {
                var delta = Delta(index, writer => JsonBytes.Text(writer, "text"u8, piece));
                firstDelta ??= delta;
                plan.AddPiece(delta);
            }

            plan.Add(Stop(index++));
        }

        foreach (var call in reply.ToolCalls)
        {
            var block = index;
            plan.Add(Event("contentBlockStart", writer =>
            {
                writer.WriteStartObject("start"u8);
                writer.WriteStartObject("toolUse"u8);
                writer.WriteString("toolUseId"u8, call.Id);
                writer.WriteString("name"u8, call.Name);
                writer.WriteEndObject();
                writer.WriteEndObject();
                writer.WriteNumber("contentBlockIndex"u8, block);
            }));
            foreach (var piece in call.Pieces)
            {
                var delta = Delta(block, writer =>
                {
                    writer.WriteStartObject("toolUse"u8);
                    JsonBytes.Text(writer, "input"u8, piece);
                    writer.WriteEndObject();
                });
                firstDelta ??= delta;
                plan.AddPiece(delta);
            }

            plan.Add(Stop(index++));
        }

        plan.Add(Event("messageStop", writer => writer.WriteString("stopReason"u8, StopReason)));
        plan.AddTerminator(Event("metadata", writer =>
        {
            writer.WritePropertyName("usage"u8);
            WriteUsage(writer);
            writer.WriteStartObject("metrics"u8);
            writer.WriteNumber("latencyMs"u8, LatencyMs);
            writer.WriteEndObject();
        }));

        // A well-framed message whose CRC does not verify: the binary framing's "malformed event".
        plan.MalformedEvent = EventStream.Corrupt(firstDelta ?? Event("contentBlockStop", static writer => writer.WriteNumber("contentBlockIndex"u8, 0)));
        return plan;
    }

    public WireError Error(UpstreamBehavior behavior) => BedrockErrors.ForBehavior(behavior, _requestId);

    private static byte[] Event(string type, Action<Utf8JsonWriter> write) =>
        EventStream.Event(type, JsonBytes.Write(write, static (writer, write) =>
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteString("p"u8, Padding);
            writer.WriteEndObject();
        }));

    private static byte[] Delta(int index, Action<Utf8JsonWriter> delta) => Event("contentBlockDelta", writer =>
    {
        writer.WriteNumber("contentBlockIndex"u8, index);
        writer.WriteStartObject("delta"u8);
        delta(writer);
        writer.WriteEndObject();
    });

    private static byte[] Stop(int index) => Event("contentBlockStop", writer => writer.WriteNumber("contentBlockIndex"u8, index));

    /// <summary>Usage; cache counts appear only when the answer used the cache, as Bedrock reports them.</summary>
    private void WriteUsage(Utf8JsonWriter writer)
    {
        var reply = _reply;
        writer.WriteStartObject();
        writer.WriteNumber("inputTokens"u8, reply.InputTokens);
        writer.WriteNumber("outputTokens"u8, reply.OutputTokens);
        writer.WriteNumber("totalTokens"u8, (long)reply.InputTokens + reply.OutputTokens + reply.CacheReadTokens + reply.CacheWriteTokens);
        if (reply.CacheReadTokens > 0 || reply.CacheWriteTokens > 0)
        {
            writer.WriteNumber("cacheReadInputTokens"u8, reply.CacheReadTokens);
            writer.WriteNumber("cacheWriteInputTokens"u8, reply.CacheWriteTokens);
        }

        writer.WriteEndObject();
    }
}
