using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Responses;

/// <summary>
/// Reads a Responses API stream as a client receives it (the gateway's own encoding of a translated answer,
/// or OpenAI's passed through) back into canonical events: what the response cache stores from a streamed
/// Responses answer, and what a follower in another client format is fed live. Text, reasoning summary (or
/// reasoning text) and function-call deltas become content events; the terminal <c>response.completed</c> /
/// <c>response.incomplete</c> gives the usage and the finish; <c>error</c> and <c>response.failed</c> an error.
/// Events are bounded by <paramref name="maxEventBytes"/> as every upstream decoder's are.
/// </summary>
internal sealed class ResponsesStreamDecoder(Stream body, int maxEventBytes) : SseStreamDecoder(body, maxEventBytes)
{
    // output_index of each function_call item -> its tool index, in the order they were opened.
    private readonly Dictionary<int, int> _calls = [];
    private bool _started;

    protected override void Decode(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data)
    {
        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 128 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InvalidDataException("A Responses stream event is not a JSON object.");
        }

        var name = eventName;
        if (name.IsEmpty)
        {
            // Without an event: line the data's "type" names it (OpenAI and the gateway send both).
            var probe = reader;
            name = probe.Read() && probe.TokenType == JsonTokenType.PropertyName && probe.ValueTextEquals("type"u8) && probe.Read() && probe.TokenType == JsonTokenType.String
                ? probe.ValueSpan
                : default;
        }

        if (name.SequenceEqual("response.output_text.delta"u8))
        {
            if (Delta(ref reader, out _) is { IsEmpty: false } text)
            {
                Emit(StreamEvent.Text(text));
            }
        }
        else if (name.SequenceEqual("response.function_call_arguments.delta"u8))
        {
            if (Delta(ref reader, out var outputIndex) is { IsEmpty: false } arguments && _calls.TryGetValue(outputIndex, out var tool))
            {
                Emit(StreamEvent.ToolArguments(tool, arguments));
            }
        }
        else if (name.SequenceEqual("response.reasoning_summary_text.delta"u8) || name.SequenceEqual("response.reasoning_text.delta"u8))
        {
            if (Delta(ref reader, out _) is { IsEmpty: false } reasoning)
            {
                Emit(StreamEvent.Reasoning(reasoning));
            }
        }
        else if (name.SequenceEqual("response.output_item.added"u8))
        {
            ReadItemAdded(ref reader);
        }
        else if (name.SequenceEqual("response.created"u8))
        {
            ReadCreated(data);
        }
        else if (name.SequenceEqual("response.completed"u8) || name.SequenceEqual("response.incomplete"u8))
        {
            ReadTerminal(data);
        }
        else if (name.SequenceEqual("response.failed"u8) || name.SequenceEqual("error"u8))
        {
            Emit(StreamEvent.Failed(Failure(data)));
        }

        // response.in_progress, *.done, content_part.*, reasoning_summary_part.*: nothing a delta did not carry.
    }

    // The "delta" string (into the scratch buffer) and the event's output_index.
    private ReadOnlyMemory<byte> Delta(ref Utf8JsonReader reader, out int outputIndex)
    {
        outputIndex = -1;
        ReadOnlyMemory<byte> delta = default;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    delta = Text(ref reader);
                }
            }
            else if (reader.ValueTextEquals("output_index"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number)
                {
                    outputIndex = reader.GetInt32();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return delta;
    }

    private void ReadItemAdded(ref Utf8JsonReader reader)
    {
        var outputIndex = -1;
        string? type = null;
        string? callId = null;
        string? toolName = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("output_index"u8))
            {
                reader.Read();
                outputIndex = reader.TokenType == JsonTokenType.Number ? reader.GetInt32() : -1;
            }
            else if (reader.ValueTextEquals("item"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var field = reader.ValueTextEquals("type"u8) ? 1 : reader.ValueTextEquals("call_id"u8) ? 2 : reader.ValueTextEquals("name"u8) ? 3 : 0;
                    reader.Read();
                    if (field == 0 || reader.TokenType != JsonTokenType.String)
                    {
                        reader.Skip();
                        continue;
                    }

                    switch (field)
                    {
                        case 1: type = reader.GetString(); break;
                        case 2: callId = reader.GetString(); break;
                        default: toolName = reader.GetString(); break;
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (type == "function_call" && outputIndex >= 0 && !_calls.ContainsKey(outputIndex))
        {
            var tool = _calls.Count;
            _calls[outputIndex] = tool;
            Emit(StreamEvent.ToolCall(tool, callId ?? string.Empty, toolName ?? string.Empty));
        }
    }

    private void ReadCreated(ReadOnlySpan<byte> data)
    {
        if (_started)
        {
            return;
        }

        using var document = JsonDocument.Parse(data.ToArray());
        var response = document.RootElement.TryGetProperty("response"u8, out var r) && r.ValueKind == JsonValueKind.Object ? r : default;
        _started = true;
        Emit(StreamEvent.Started(ResponsesAnswerReader.String(response, "id"), ResponsesAnswerReader.String(response, "model")));
    }

    private void ReadTerminal(ReadOnlySpan<byte> data)
    {
        using var document = JsonDocument.Parse(data.ToArray());
        if (!document.RootElement.TryGetProperty("response"u8, out var response) || response.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("A Responses terminal event carries no response object.");
        }

        if (!_started)
        {
            _started = true;
            Emit(StreamEvent.Started(ResponsesAnswerReader.String(response, "id"), ResponsesAnswerReader.String(response, "model")));
        }

        if (ResponsesAnswerReader.Usage(response) is { } usage)
        {
            Emit(StreamEvent.Counted(usage));
        }

        Emit(StreamEvent.Finished(ResponsesAnswerReader.Finish(response, _calls.Count > 0)));
        IsComplete = true;
    }

    private static UpstreamError Failure(ReadOnlySpan<byte> data)
    {
        using var document = JsonDocument.Parse(data.ToArray());
        var root = document.RootElement;
        var error = root.TryGetProperty("response"u8, out var response) && response.ValueKind == JsonValueKind.Object
            && response.TryGetProperty("error"u8, out var e) && e.ValueKind == JsonValueKind.Object ? e : root;
        var message = ResponsesAnswerReader.String(error, "message") ?? "The answer failed.";
        var code = ResponsesAnswerReader.String(error, "code") ?? "server_error";
        return new UpstreamError(UpstreamErrorKind.ServerError, new ApiError(502, message, "server_error", code), message, 502);
    }
}
