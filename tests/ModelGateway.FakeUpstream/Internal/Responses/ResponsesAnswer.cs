using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Responses;

/// <summary>
/// A Responses API answer: the <c>response</c> object, or its typed stream, with <c>sequence_number</c>s
/// from 0: <c>response.created</c>, <c>response.in_progress</c>, then per output item (reasoning,
/// message, function calls) its <c>added</c>, deltas, <c>done</c> events, and <c>response.completed</c>
/// (or <c>response.incomplete</c> when <c>max_output_tokens</c> cut it).
/// </summary>
internal sealed class ResponsesAnswer : IWireAnswer
{
    private readonly UpstreamBehavior _behavior;
    private readonly Reply _reply;
    private readonly ResponsesRequest _request;
    private readonly long _created;
    private readonly string _reasoningId = "rs_" + WireIds.HexId(48);
    private readonly string _messageId = "msg_" + WireIds.HexId(48);
    private readonly string[] _callItemIds;

    public ResponsesAnswer(UpstreamBehavior behavior, Reply reply, ResponsesRequest request, DateTimeOffset now)
    {
        _behavior = behavior;
        _reply = reply;
        _request = request;
        _created = now.ToUnixTimeSeconds();
        Id = "resp_" + WireIds.HexId(48);
        _callItemIds = [.. reply.ToolCalls.Select(_ => "fc_" + WireIds.HexId(48))];
    }

    public string Id { get; }

    private bool Incomplete => _reply.Stop == StopKind.MaxTokens;

    public byte[] Body() => JsonBytes.Write(this, static (writer, self) => self.WriteResponse(writer, self.Incomplete ? "incomplete" : "completed", final: true));

    public WireError Error(UpstreamBehavior behavior) => new(behavior.StatusCode, ErrorBodies.ForBehavior(behavior, _request.Facts.Model));

    public StreamPlan Stream()
    {
        var plan = new StreamPlan(Sse.ContentType);
        var sequence = 0;
        byte[] Event(string name, Action<Utf8JsonWriter> fields) => Sse.Event(name, JsonBytes.Write((name, fields, sequence++), static (writer, state) =>
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, state.name);
            writer.WriteNumber("sequence_number"u8, state.Item3);
            state.fields(writer);
            writer.WriteEndObject();
        }));

        plan.Add(Event("response.created", w => { w.WritePropertyName("response"u8); WriteResponse(w, "in_progress", final: false); }));
        plan.Add(Event("response.in_progress", w => { w.WritePropertyName("response"u8); WriteResponse(w, "in_progress", final: false); }));
        var index = 0;
        if (_reply.Thinking is not null)
        {
            var at = index++;
            plan.Add(Event("response.output_item.added", w => { w.WriteNumber("output_index"u8, at); w.WritePropertyName("item"u8); WriteReasoning(w, done: false); }));
            foreach (var piece in _reply.ThinkingPieces)
            {
                plan.AddPiece(Event("response.reasoning_summary_text.delta", w => { Address(w, _reasoningId, at); w.WriteNumber("summary_index"u8, 0); JsonBytes.Text(w, "delta"u8, piece); }));
            }

            plan.Add(Event("response.reasoning_summary_text.done", w => { Address(w, _reasoningId, at); w.WriteNumber("summary_index"u8, 0); JsonBytes.Text(w, "text"u8, _reply.Thinking); }));
            plan.Add(Event("response.output_item.done", w => { w.WriteNumber("output_index"u8, at); w.WritePropertyName("item"u8); WriteReasoning(w, done: true); }));
        }

        if (_reply.Text is not null)
        {
            var at = index++;
            plan.Add(Event("response.output_item.added", w => { w.WriteNumber("output_index"u8, at); w.WritePropertyName("item"u8); WriteMessage(w, done: false); }));
            plan.Add(Event("response.content_part.added", w => { Address(w, _messageId, at); w.WriteNumber("content_index"u8, 0); w.WritePropertyName("part"u8); WriteTextPart(w, string.Empty); }));
            foreach (var piece in _reply.TextPieces)
            {
                plan.AddPiece(Event("response.output_text.delta", w => { Address(w, _messageId, at); w.WriteNumber("content_index"u8, 0); JsonBytes.Text(w, "delta"u8, piece); w.WriteStartArray("logprobs"u8); w.WriteEndArray(); }));
            }

            plan.Add(Event("response.output_text.done", w => { Address(w, _messageId, at); w.WriteNumber("content_index"u8, 0); JsonBytes.Text(w, "text"u8, _reply.Text); }));
            plan.Add(Event("response.content_part.done", w => { Address(w, _messageId, at); w.WriteNumber("content_index"u8, 0); w.WritePropertyName("part"u8); WriteTextPart(w, _reply.Text); }));
            plan.Add(Event("response.output_item.done", w => { w.WriteNumber("output_index"u8, at); w.WritePropertyName("item"u8); WriteMessage(w, done: true); }));
        }

        for (var i = 0; i < _reply.ToolCalls.Count; i++)
        {
            var call = i;
            var at = index++;
            plan.Add(Event("response.output_item.added", w => { w.WriteNumber("output_index"u8, at); w.WritePropertyName("item"u8); WriteCall(w, call, done: false); }));
            foreach (var piece in _reply.ToolCalls[call].Pieces)
            {
                plan.AddPiece(Event("response.function_call_arguments.delta", w => { Address(w, _callItemIds[call], at); JsonBytes.Text(w, "delta"u8, piece); }));
            }

            plan.Add(Event("response.function_call_arguments.done", w => { Address(w, _callItemIds[call], at); JsonBytes.Text(w, "arguments"u8, _reply.ToolCalls[call].Arguments); }));
            plan.Add(Event("response.output_item.done", w => { w.WriteNumber("output_index"u8, at); w.WritePropertyName("item"u8); WriteCall(w, call, done: true); }));
        }

        var terminal = Incomplete ? "response.incomplete" : "response.completed";
        plan.AddTerminator(Event(terminal, w => { w.WritePropertyName("response"u8); WriteResponse(w, Incomplete ? "incomplete" : "completed", final: true); }));
        plan.MalformedEvent = "event: response.output_text.delta\ndata: {not json\n\n"u8.ToArray();
        plan.ErrorEvent = Event("error", w =>
        {
            w.WriteString("code"u8, _behavior.ErrorCode ?? "server_error");
            w.WriteString("message"u8, _behavior.ErrorMessage ?? "The server had an error while processing your request.");
            w.WriteNull("param"u8);
        });
        return plan;
    }

    private void WriteResponse(Utf8JsonWriter w, string status, bool final)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, Id);
        w.WriteString("object"u8, "response"u8);
        w.WriteNumber("created_at"u8, _created);
        w.WriteString("status"u8, status);
        w.WriteNull("error"u8);
        if (status == "incomplete")
        {
            w.WriteStartObject("incomplete_details"u8);
            w.WriteString("reason"u8, "max_output_tokens"u8);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("incomplete_details"u8);
        }

        if (_request.Instructions is { } instructions)
        {
            w.WriteString("instructions"u8, instructions);
        }
        else
        {
            w.WriteNull("instructions"u8);
        }

        w.WriteString("model"u8, _request.Facts.Model);
        w.WriteStartArray("output"u8);
        if (final)
        {
            if (_reply.Thinking is not null)
            {
                WriteReasoning(w, done: true);
            }

            if (_reply.Text is not null)
            {
                WriteMessage(w, done: true);
            }

            for (var i = 0; i < _reply.ToolCalls.Count; i++)
            {
                WriteCall(w, i, done: true);
            }
        }

        w.WriteEndArray();
        w.WriteBoolean("parallel_tool_calls"u8, true);
        if (_request.PreviousResponseId is { } previous)
        {
            w.WriteString("previous_response_id"u8, previous);
        }
        else
        {
            w.WriteNull("previous_response_id"u8);
        }

        w.WriteBoolean("store"u8, _request.Store);
        w.WriteStartObject("text"u8);
        w.WriteStartObject("format"u8);
        w.WriteString("type"u8, "text"u8);
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteString("tool_choice"u8, "auto"u8);
        w.WriteStartArray("tools"u8);
        w.WriteEndArray();
        if (final)
        {
            w.WriteStartObject("usage"u8);
            w.WriteNumber("input_tokens"u8, _reply.InputTokens);
            w.WriteStartObject("input_tokens_details"u8);
            w.WriteNumber("cached_tokens"u8, _reply.CacheReadTokens);
            w.WriteEndObject();
            w.WriteNumber("output_tokens"u8, _reply.OutputTokens);
            w.WriteStartObject("output_tokens_details"u8);
            w.WriteNumber("reasoning_tokens"u8, _reply.ThinkingTokens);
            w.WriteEndObject();
            w.WriteNumber("total_tokens"u8, _reply.InputTokens + _reply.OutputTokens);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("usage"u8);
        }

        w.WriteStartObject("metadata"u8);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private void WriteReasoning(Utf8JsonWriter w, bool done)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, _reasoningId);
        w.WriteString("type"u8, "reasoning"u8);
        w.WriteStartArray("summary"u8);
        if (done)
        {
            w.WriteStartObject();
            w.WriteString("type"u8, "summary_text"u8);
            JsonBytes.Text(w, "text"u8, _reply.Thinking!);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteString("encrypted_content"u8, _reply.Signature);
        w.WriteEndObject();
    }

    private void WriteMessage(Utf8JsonWriter w, bool done)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, _messageId);
        w.WriteString("type"u8, "message"u8);
        w.WriteString("status"u8, done ? "completed"u8 : "in_progress"u8);
        w.WriteStartArray("content"u8);
        if (done)
        {
            WriteTextPart(w, _reply.Text!);
        }

        w.WriteEndArray();
        w.WriteString("role"u8, "assistant"u8);
        w.WriteEndObject();
    }

    private void WriteCall(Utf8JsonWriter w, int index, bool done)
    {
        var call = _reply.ToolCalls[index];
        w.WriteStartObject();
        w.WriteString("id"u8, _callItemIds[index]);
        w.WriteString("type"u8, "function_call"u8);
        w.WriteString("status"u8, done ? "completed"u8 : "in_progress"u8);
        JsonBytes.Text(w, "arguments"u8, done ? call.Arguments : string.Empty);
        w.WriteString("call_id"u8, call.Id);
        w.WriteString("name"u8, call.Name);
        w.WriteEndObject();
    }

    private static void WriteTextPart(Utf8JsonWriter w, string text)
    {
        w.WriteStartObject();
        w.WriteString("type"u8, "output_text"u8);
        w.WriteStartArray("annotations"u8);
        w.WriteEndArray();
        JsonBytes.Text(w, "text"u8, text);
        w.WriteEndObject();
    }

    private static void Address(Utf8JsonWriter w, string itemId, int outputIndex)
    {
        w.WriteString("item_id"u8, itemId);
        w.WriteNumber("output_index"u8, outputIndex);
    }
}
