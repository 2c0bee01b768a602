using System.Buffers;
using System.Text.Json;
using ModelGateway.Forwarding;
using ModelGateway.Providers;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Responses;

/// <summary>
/// The bytes a Responses request sends upstream as it is, and the conversation a stored response keeps.
/// A pass-through body is the client's with <c>model</c> spliced; when it continues a response the
/// gateway translated (so OpenAI has never seen it), the stored conversation goes inline: its items are
/// spliced in front of <c>input</c> and <c>previous_response_id</c> becomes <c>null</c>.
/// </summary>
internal static class ResponsesPassThrough
{
    private static readonly byte[] NullLiteral = "null"u8.ToArray();

    public static SplicedBody Body(UpstreamRequest call, ResponsesExchange exchange)
    {
        var request = call.Request;
        ref readonly var info = ref request.Info;
        var body = request.Body;
        var edits = new BodyEdit[3];
        var count = 0;
        var upstreamModel = call.Deployment.UpstreamModelJson;
        if (!body.Slice(info.ModelStart, info.ModelLength).SequenceEqual(upstreamModel))
        {
            edits[count++] = new BodyEdit(info.ModelStart, info.ModelLength, upstreamModel);
        }

        if (exchange.Previous is { } previous)
        {
            var history = Inner(exchange.PassThroughHistory ??= ForOpenAI(previous.Context));
            var (inputStart, inputLength) = exchange.InputValue;
            if (inputLength == 0)
            {
                edits[count++] = new BodyEdit(info.BodyStart + 1, 0, Concat("\"input\":["u8, history, "],"u8));
            }
            else if (exchange.InputIsString)
            {
                var text = body.Slice(inputStart, inputLength);
                var separator = history.IsEmpty ? ""u8 : ","u8;
                edits[count++] = new BodyEdit(inputStart, inputLength, Concat(Concat("["u8, history, separator), Concat("{\"role\":\"user\",\"content\":"u8, text, "}]"u8), []));
            }
            else
            {
                var items = body.Slice(inputStart, inputLength);
                var separator = history.IsEmpty || Inner(items).IsEmpty ? ""u8 : ","u8;
                edits[count++] = new BodyEdit(inputStart + 1, 0, Concat(history, separator, []));
            }

            var (previousStart, previousLength) = exchange.PreviousValue;
            edits[count++] = new BodyEdit(previousStart, previousLength, NullLiteral);
            Array.Sort(edits, 0, count, Comparer<BodyEdit>.Create(static (a, b) => a.Offset.CompareTo(b.Offset)));
        }

        return new SplicedBody(request.BodyMemory, edits, count);
    }

    /// <summary>
    /// The conversation a follow-up continues from: the stored history, this request's input (a string
    /// becomes a user message), and the answer's output items, as one JSON array.
    /// </summary>
    public static byte[] Context(GatewayRequest request, ResponsesExchange exchange, IEnumerable<byte[]> output)
    {
        var buffer = new ArrayBufferWriter<byte>(request.Body.Length + 1024);
        using (var json = new Utf8JsonWriter(buffer, JsonOutput.Options))
        {
            json.WriteStartArray();
            if (exchange.Previous is { Context.IsEmpty: false } previous)
            {
                using var history = JsonDocument.Parse(previous.Context);
                foreach (var item in history.RootElement.EnumerateArray())
                {
                    item.WriteTo(json);
                }
            }

            var (start, length) = exchange.InputValue;
            if (length > 0)
            {
                var input = request.BodyMemory.Slice(start, length);
                if (exchange.InputIsString)
                {
                    json.WriteStartObject();
                    json.WriteString("type"u8, "message"u8);
                    json.WriteString("role"u8, "user"u8);
                    json.WritePropertyName("content"u8);
                    json.WriteRawValue(input.Span, skipInputValidation: true);
                    json.WriteEndObject();
                }
                else
                {
                    using var items = JsonDocument.Parse(input);
                    foreach (var item in items.RootElement.EnumerateArray())
                    {
                        item.WriteTo(json);
                    }
                }
            }

            foreach (var item in output)
            {
                json.WriteRawValue(item, skipInputValidation: true);
            }

            json.WriteEndArray();
        }

        return buffer.WrittenSpan.ToArray();
    }

    // OpenAI takes the conversation's items as they are, except the gateway's own reasoning (its envelope is
    // no encrypted content OpenAI can read) and the gateway's item ids (which name nothing OpenAI stored).
    private static byte[] ForOpenAI(ReadOnlyMemory<byte> context)
    {
        using var document = JsonDocument.Parse(context);
        var buffer = new ArrayBufferWriter<byte>(context.Length);
        using (var json = new Utf8JsonWriter(buffer, JsonOutput.Options))
        {
            json.WriteStartArray();
            foreach (var item in document.RootElement.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }

                if (ResponsesRequestReader.String(item, "type") == "reasoning")
                {
                    continue;
                }

                json.WriteStartObject();
                foreach (var property in item.EnumerateObject())
                {
                    if (property.NameEquals("id"u8))
                    {
                        continue;
                    }

                    property.WriteTo(json);
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        return buffer.WrittenSpan.ToArray();
    }

    // The elements of a JSON array's text, without its brackets and surrounding space.
    private static ReadOnlySpan<byte> Inner(ReadOnlySpan<byte> array)
    {
        var trimmed = array.Trim(" \t\r\n"u8);
        return trimmed.Length >= 2 ? trimmed[1..^1].Trim(" \t\r\n"u8) : default;
    }

    private static byte[] Concat(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c)
    {
        var result = new byte[a.Length + b.Length + c.Length];
        a.CopyTo(result);
        b.CopyTo(result.AsSpan(a.Length));
        c.CopyTo(result.AsSpan(a.Length + b.Length));
        return result;
    }
}
