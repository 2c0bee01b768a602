using System.Buffers;
using System.Text;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Forwarding;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Responses;

/// <summary>
/// Writes canonical events as the Responses API's typed stream, the way OpenAI sends it: every event
/// named (<c>event:</c>) and numbered (<c>sequence_number</c> from 0, one per event), an output item per
/// reasoning block, message and function call, each opened (<c>output_item.added</c>), filled by deltas
/// and closed (<c>.done</c> events, then <c>output_item.done</c>), and a terminal event
/// (<c>response.completed</c>, <c>response.incomplete</c> or <c>response.failed</c>) carrying the whole
/// <c>response</c> object with usage. It keeps every output item, so the same encoder writes the
/// non-streamed body and hands the items to the response store.
/// </summary>
internal sealed class ResponsesStreamEncoder : IStreamEncoder
{
    /// <summary>Prefix of the <c>encrypted_content</c> the gateway writes: reasoning text and the provider's signature, readable only by the gateway.</summary>
    public const string ReasoningEnvelopePrefix = "mgr1.";

    private static ReadOnlySpan<byte> EventPrefix => "event: "u8;

    private readonly GatewayRequest _request;
    private readonly ResponsesExchange _exchange;
    private readonly string _model;
    private readonly long _created;
    private readonly List<OutputItem> _items = [];
    private readonly Dictionary<int, OutputItem> _calls = [];
    private OutputItem? _message;
    private OutputItem? _reasoning;
    private int _sequence;
    private bool _started;
    private FinishReason _finish;
    private TokenUsage _usage;
    private bool _hasUsage;

    public ResponsesStreamEncoder(GatewayRequest request, ResponsesExchange exchange, string model, long created)
    {
        _request = request;
        _exchange = exchange;
        _model = model;
        _created = created;
    }

    /// <summary>The status the answer ended with: completed, incomplete or failed (null while it runs).</summary>
    public string? FinalStatus { get; private set; }

    /// <summary>The terminal <c>response</c> object, once written.</summary>
    public byte[]? FinalResponse { get; private set; }

    /// <summary>Every output item, whole, with reasoning's <c>encrypted_content</c> (for the store), as one JSON array's elements.</summary>
    public IEnumerable<byte[]> StoredItems => _items.Where(i => i.Stored is not null).Select(i => i.Stored!);

    public void Write(in StreamEvent streamEvent, IBufferWriter<byte> output)
    {
        switch (streamEvent.Kind)
        {
            case StreamEventKind.Started:
                EnsureStarted(output);
                break;
            case StreamEventKind.ReasoningDelta:
                EnsureStarted(output);
                WriteReasoning(streamEvent.Utf8, output);
                break;
            case StreamEventKind.ReasoningSignature:
                if (_reasoning is { } reasoning)
                {
                    (reasoning.Signature ??= new ArrayBufferWriter<byte>(128)).Write(streamEvent.Utf8.Span);
                }

                break;
            case StreamEventKind.TextDelta:
                EnsureStarted(output);
                WriteText(streamEvent.Utf8, output);
                break;
            case StreamEventKind.ToolCallStart:
                EnsureStarted(output);
                StartCall(streamEvent.Index, streamEvent.Id, streamEvent.Name, output);
                break;
            case StreamEventKind.ToolCallDelta:
                EnsureStarted(output);
                if (!_calls.TryGetValue(streamEvent.Index, out var call))
                {
                    call = StartCall(streamEvent.Index, null, null, output);
                }

                call.Text.Write(streamEvent.Utf8.Span);
                WriteEvent(output, "response.function_call_arguments.delta", call, static (json, item, state) =>
                {
                    json.WriteNumber("output_index"u8, item.OutputIndex);
                    json.WriteString("item_id"u8, item.Id);
                    json.WriteString("delta"u8, state.Span);
                }, streamEvent.Utf8);
                break;
            case StreamEventKind.Finish:
                EnsureStarted(output);
                _finish = streamEvent.Finish;
                CloseAll(output);
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
        CloseAll(output);
        var (status, eventName) = _finish switch
        {
            FinishReason.Length or FinishReason.ContentFilter => ("incomplete", "response.incomplete"),
            _ => ("completed", "response.completed"),
        };
        WriteTerminal(output, status, eventName, null);
    }

    public void Fail(ApiError error, IBufferWriter<byte> output)
    {
        EnsureStarted(output);
        WriteTerminal(output, "failed", "response.failed", error);
    }

    /// <summary>Writes the <c>response</c> object as it stands (the non-streamed body, or inside an event).</summary>
    public void WriteResponseObject(Utf8JsonWriter json, string status, ApiError? error, bool final)
    {
        var body = _request.Body;
        json.WriteStartObject();
        json.WriteString("id"u8, _exchange.ResponseId);
        json.WriteString("object"u8, "response"u8);
        json.WriteNumber("created_at"u8, _created);
        json.WriteString("status"u8, status);
        json.WriteBoolean("background"u8, false);
        if (error is null)
        {
            json.WriteNull("error"u8);
        }
        else
        {
            json.WriteStartObject("error"u8);
            json.WriteString("code"u8, error.Code ?? "server_error");
            json.WriteString("message"u8, error.Message);
            json.WriteEndObject();
        }

        if (status == "incomplete")
        {
            json.WriteStartObject("incomplete_details"u8);
            json.WriteString("reason"u8, _finish == FinishReason.ContentFilter ? "content_filter"u8 : "max_output_tokens"u8);
            json.WriteEndObject();
        }
        else
        {
            json.WriteNull("incomplete_details"u8);
        }

        Echo(json, body, "instructions", "null"u8);
        Echo(json, body, "max_output_tokens", "null"u8);
        Echo(json, body, "max_tool_calls", "null"u8);
        json.WriteString("model"u8, _model);
        json.WriteStartArray("output"u8);
        if (final)
        {
            foreach (var item in _items)
            {
                if (item.Client is { } client)
                {
                    json.WriteRawValue(client, skipInputValidation: true);
                }
            }
        }

        json.WriteEndArray();
        Echo(json, body, "parallel_tool_calls", "true"u8);
        Echo(json, body, "previous_response_id", "null"u8);
        Echo(json, body, "prompt_cache_key", "null"u8);
        Echo(json, body, "reasoning", """{"effort":null,"summary":null}"""u8);
        Echo(json, body, "safety_identifier", "null"u8);
        Echo(json, body, "service_tier", "\"default\""u8);
        json.WriteBoolean("store"u8, _exchange.Store);
        Echo(json, body, "temperature", "1.0"u8);
        Echo(json, body, "text", """{"format":{"type":"text"}}"""u8);
        Echo(json, body, "tool_choice", "\"auto\""u8);
        Echo(json, body, "tools", "[]"u8);
        Echo(json, body, "top_logprobs", "0"u8);
        Echo(json, body, "top_p", "1.0"u8);
        Echo(json, body, "truncation", "\"disabled\""u8);
        if (final && (_hasUsage || status != "failed"))
        {
            WriteUsage(json, _usage);
        }
        else
        {
            json.WriteNull("usage"u8);
        }

        Echo(json, body, "user", "null"u8);
        Echo(json, body, "metadata", "{}"u8);
        json.WriteEndObject();
    }

    /// <summary>OpenAI's Responses usage: cached tokens are part of <c>input_tokens</c>, reasoning of <c>output_tokens</c>.</summary>
    public static void WriteUsage(Utf8JsonWriter json, in TokenUsage usage)
    {
        json.WriteStartObject("usage"u8);
        json.WriteNumber("input_tokens"u8, usage.Input);
        json.WriteStartObject("input_tokens_details"u8);
        json.WriteNumber("cached_tokens"u8, usage.CacheRead);
        json.WriteEndObject();
        json.WriteNumber("output_tokens"u8, usage.Output);
        json.WriteStartObject("output_tokens_details"u8);
        json.WriteNumber("reasoning_tokens"u8, usage.Reasoning);
        json.WriteEndObject();
        json.WriteNumber("total_tokens"u8, usage.Input + usage.Output);
        json.WriteEndObject();
    }

    /// <summary>Reads the gateway's reasoning envelope back; false for another provider's encrypted content.</summary>
    public static bool TryOpenReasoning(string? encrypted, out string text, out string? signature)
    {
        text = string.Empty;
        signature = null;
        if (encrypted is null || !encrypted.StartsWith(ReasoningEnvelopePrefix, StringComparison.Ordinal))
        {
            return false;
        }

        try
        {
            var bytes = Convert.FromBase64String(encrypted[ReasoningEnvelopePrefix.Length..]);
            using var document = JsonDocument.Parse(bytes);
            var root = document.RootElement;
            text = root.TryGetProperty("t", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : string.Empty;
            signature = root.TryGetProperty("s", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
            return true;
        }
        catch (Exception ex) when (ex is FormatException or JsonException)
        {
            return false;
        }
    }

    private void EnsureStarted(IBufferWriter<byte> output)
    {
        if (_started)
        {
            // A continuation's second Started joins the answer the client already sees.
            return;
        }

        _started = true;
        WriteEvent(output, "response.created", this, static (json, self, _) => self.WriteResponseProperty(json, "in_progress"), default);
        WriteEvent(output, "response.in_progress", this, static (json, self, _) => self.WriteResponseProperty(json, "in_progress"), default);
    }

    private void WriteResponseProperty(Utf8JsonWriter json, string status)
    {
        json.WritePropertyName("response"u8);
        WriteResponseObject(json, status, null, final: false);
    }

    private void WriteReasoning(ReadOnlyMemory<byte> delta, IBufferWriter<byte> output)
    {
        if (_reasoning is null)
        {
            CloseMessage(output);
            _reasoning = Open(OutputKind.Reasoning, "rs_", output);
            WriteEvent(output, "response.reasoning_summary_part.added", _reasoning, static (json, item, _) =>
            {
                WriteItemAddress(json, item);
                json.WriteNumber("summary_index"u8, 0);
                json.WriteStartObject("part"u8);
                json.WriteString("type"u8, "summary_text"u8);
                json.WriteString("text"u8, ""u8);
                json.WriteEndObject();
            }, default);
        }

        _reasoning.Text.Write(delta.Span);
        WriteEvent(output, "response.reasoning_summary_text.delta", _reasoning, static (json, item, state) =>
        {
            WriteItemAddress(json, item);
            json.WriteNumber("summary_index"u8, 0);
            json.WriteString("delta"u8, state.Span);
        }, delta);
    }

    private void WriteText(ReadOnlyMemory<byte> delta, IBufferWriter<byte> output)
    {
        if (_message is null)
        {
            CloseReasoning(output);
            _message = Open(OutputKind.Message, "msg_", output);
            WriteEvent(output, "response.content_part.added", _message, static (json, item, _) =>
            {
                WriteItemAddress(json, item);
                json.WriteNumber("content_index"u8, 0);
                json.WritePropertyName("part"u8);
                WriteTextPart(json, ""u8);
            }, default);
        }

        _message.Text.Write(delta.Span);
        WriteEvent(output, "response.output_text.delta", _message, static (json, item, state) =>
        {
            WriteItemAddress(json, item);
            json.WriteNumber("content_index"u8, 0);
            json.WriteString("delta"u8, state.Span);
            json.WriteStartArray("logprobs"u8);
            json.WriteEndArray();
        }, delta);
    }

    private OutputItem StartCall(int index, string? id, string? name, IBufferWriter<byte> output)
    {
        CloseReasoning(output);
        CloseMessage(output);
        var item = new OutputItem(OutputKind.FunctionCall, ResponsesExchange.NewId("fc_"), _items.Count)
        {
            CallId = string.IsNullOrEmpty(id) ? ResponsesExchange.NewId("call_")[..29] : id,
            Name = name ?? string.Empty,
        };
        _items.Add(item);
        _calls[index] = item;
        WriteAdded(item, output);
        return item;
    }

    private OutputItem Open(OutputKind kind, string prefix, IBufferWriter<byte> output)
    {
        var item = new OutputItem(kind, ResponsesExchange.NewId(prefix), _items.Count);
        _items.Add(item);
        WriteAdded(item, output);
        return item;
    }

    private void WriteAdded(OutputItem item, IBufferWriter<byte> output)
        => WriteEvent(output, "response.output_item.added", item, static (json, item, _) =>
        {
            json.WriteNumber("output_index"u8, item.OutputIndex);
            json.WritePropertyName("item"u8);
            WriteItem(json, item, done: false, encrypted: false);
        }, default);

    private void CloseAll(IBufferWriter<byte> output)
    {
        CloseReasoning(output);
        CloseMessage(output);
        foreach (var item in _items)
        {
            if (item.Kind == OutputKind.FunctionCall && item.Client is null)
            {
                WriteEvent(output, "response.function_call_arguments.done", item, static (json, item, _) =>
                {
                    WriteItemAddress(json, item);
                    json.WriteString("name"u8, item.Name);
                    json.WriteString("arguments"u8, item.Arguments);
                }, default);
                Done(item, output);
            }
        }

        _calls.Clear();
    }

    private void CloseReasoning(IBufferWriter<byte> output)
    {
        if (_reasoning is not { } item)
        {
            return;
        }

        _reasoning = null;
        WriteEvent(output, "response.reasoning_summary_text.done", item, static (json, item, _) =>
        {
            WriteItemAddress(json, item);
            json.WriteNumber("summary_index"u8, 0);
            json.WriteString("text"u8, item.Text.WrittenSpan);
        }, default);
        WriteEvent(output, "response.reasoning_summary_part.done", item, static (json, item, _) =>
        {
            WriteItemAddress(json, item);
            json.WriteNumber("summary_index"u8, 0);
            json.WriteStartObject("part"u8);
            json.WriteString("type"u8, "summary_text"u8);
            json.WriteString("text"u8, item.Text.WrittenSpan);
            json.WriteEndObject();
        }, default);
        Done(item, output);
    }

    private void CloseMessage(IBufferWriter<byte> output)
    {
        if (_message is not { } item)
        {
            return;
        }

        _message = null;
        WriteEvent(output, "response.output_text.done", item, static (json, item, _) =>
        {
            WriteItemAddress(json, item);
            json.WriteNumber("content_index"u8, 0);
            json.WriteString("text"u8, item.Text.WrittenSpan);
            json.WriteStartArray("logprobs"u8);
            json.WriteEndArray();
        }, default);
        WriteEvent(output, "response.content_part.done", item, static (json, item, _) =>
        {
            WriteItemAddress(json, item);
            json.WriteNumber("content_index"u8, 0);
            json.WritePropertyName("part"u8);
            WriteTextPart(json, item.Text.WrittenSpan);
        }, default);
        Done(item, output);
    }

    private void Done(OutputItem item, IBufferWriter<byte> output)
    {
        item.Client = ItemJson(item, _exchange.IncludeEncryptedReasoning);
        item.Stored = item.Kind == OutputKind.Reasoning && !_exchange.IncludeEncryptedReasoning ? ItemJson(item, encrypted: true) : item.Client;
        WriteEvent(output, "response.output_item.done", item, static (json, item, _) =>
        {
            json.WriteNumber("output_index"u8, item.OutputIndex);
            json.WritePropertyName("item"u8);
            json.WriteRawValue(item.Client!, skipInputValidation: true);
        }, default);
    }

    private static byte[] ItemJson(OutputItem item, bool encrypted)
    {
        var buffer = new ArrayBufferWriter<byte>(item.Text.WrittenCount + 256);
        using (var json = new Utf8JsonWriter(buffer, JsonOutput.Options))
        {
            WriteItem(json, item, done: true, encrypted);
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteItem(Utf8JsonWriter json, OutputItem item, bool done, bool encrypted)
    {
        json.WriteStartObject();
        json.WriteString("id"u8, item.Id);
        switch (item.Kind)
        {
            case OutputKind.Message:
                json.WriteString("type"u8, "message"u8);
                json.WriteString("status"u8, done ? "completed"u8 : "in_progress"u8);
                json.WriteStartArray("content"u8);
                if (done)
                {
                    WriteTextPart(json, item.Text.WrittenSpan);
                }

                json.WriteEndArray();
                json.WriteString("role"u8, "assistant"u8);
                break;
            case OutputKind.FunctionCall:
                json.WriteString("type"u8, "function_call"u8);
                json.WriteString("status"u8, done ? "completed"u8 : "in_progress"u8);
                json.WriteString("arguments"u8, done ? item.Arguments : string.Empty);
                json.WriteString("call_id"u8, item.CallId);
                json.WriteString("name"u8, item.Name);
                break;
            default:
                json.WriteString("type"u8, "reasoning"u8);
                json.WriteStartArray("summary"u8);
                if (done && item.Text.WrittenCount > 0)
                {
                    json.WriteStartObject();
                    json.WriteString("type"u8, "summary_text"u8);
                    json.WriteString("text"u8, item.Text.WrittenSpan);
                    json.WriteEndObject();
                }

                json.WriteEndArray();
                if (done && encrypted)
                {
                    json.WriteString("encrypted_content"u8, Envelope(item));
                }

                break;
        }

        json.WriteEndObject();
    }

    // The reasoning text with the provider's signature, so a later turn can give Anthropic back its signed thinking.
    private static string Envelope(OutputItem item)
    {
        var buffer = new ArrayBufferWriter<byte>(item.Text.WrittenCount + 256);
        using (var json = new Utf8JsonWriter(buffer, JsonOutput.Options))
        {
            json.WriteStartObject();
            json.WriteString("t"u8, item.Text.WrittenSpan);
            if (item.Signature is { WrittenCount: > 0 } signature)
            {
                json.WriteString("s"u8, signature.WrittenSpan);
            }

            json.WriteEndObject();
        }

        return ReasoningEnvelopePrefix + Convert.ToBase64String(buffer.WrittenSpan);
    }

    private static void WriteTextPart(Utf8JsonWriter json, ReadOnlySpan<byte> text)
    {
        json.WriteStartObject();
        json.WriteString("type"u8, "output_text"u8);
        json.WriteStartArray("annotations"u8);
        json.WriteEndArray();
        json.WriteStartArray("logprobs"u8);
        json.WriteEndArray();
        json.WriteString("text"u8, text);
        json.WriteEndObject();
    }

    private static void WriteItemAddress(Utf8JsonWriter json, OutputItem item)
    {
        json.WriteString("item_id"u8, item.Id);
        json.WriteNumber("output_index"u8, item.OutputIndex);
    }

    private void WriteTerminal(IBufferWriter<byte> output, string status, string eventName, ApiError? error)
    {
        FinalStatus = status;
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(buffer, JsonOutput.Options))
        {
            WriteResponseObject(json, status, error, final: true);
        }

        FinalResponse = buffer.WrittenSpan.ToArray();
        WriteEvent(output, eventName, FinalResponse, static (json, response, _) =>
        {
            json.WritePropertyName("response"u8);
            json.WriteRawValue(response, skipInputValidation: true);
        }, default);
    }

    // The request's own value where it gave one, else OpenAI's default.
    private void Echo(Utf8JsonWriter json, ReadOnlySpan<byte> body, string name, ReadOnlySpan<byte> fallback)
    {
        var given = _exchange.Echo(body, name);
        json.WritePropertyName(name);
        json.WriteRawValue(given.IsEmpty ? fallback : given, skipInputValidation: true);
    }

    private void WriteEvent<T>(IBufferWriter<byte> output, string name, T state, Action<Utf8JsonWriter, T, ReadOnlyMemory<byte>> fields, ReadOnlyMemory<byte> data)
    {
        output.Write(EventPrefix);
        Encoding.UTF8.GetBytes(name, output);
        output.Write("\ndata: "u8);
        using (var json = new Utf8JsonWriter(output, JsonOutput.Options))
        {
            json.WriteStartObject();
            json.WriteString("type"u8, name);
            json.WriteNumber("sequence_number"u8, _sequence++);
            fields(json, state, data);
            json.WriteEndObject();
        }

        output.Write("\n\n"u8);
    }

    private enum OutputKind : byte
    {
        Message,
        FunctionCall,
        Reasoning,
    }

    private sealed class OutputItem(OutputKind kind, string id, int outputIndex)
    {
        public OutputKind Kind { get; } = kind;

        public string Id { get; } = id;

        public int OutputIndex { get; } = outputIndex;

        /// <summary>Text, reasoning, or a function call's arguments, as UTF-8.</summary>
        public ArrayBufferWriter<byte> Text { get; } = new(256);

        public ArrayBufferWriter<byte>? Signature { get; set; }

        public string? CallId { get; init; }

        public string Name { get; init; } = string.Empty;

        public string Arguments => Text.WrittenCount == 0 ? "{}" : Encoding.UTF8.GetString(Text.WrittenSpan);

        /// <summary>The finished item as the client sees it.</summary>
        public byte[]? Client { get; set; }

        /// <summary>The finished item as the store keeps it (reasoning always with its envelope).</summary>
        public byte[]? Stored { get; set; }
    }
}
