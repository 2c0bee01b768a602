using System.Buffers;
using System.Text;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Providers.Anthropic;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Anthropic;

/// <summary>Writes a canonical answer as Anthropic's <c>message</c> object.</summary>
internal static class MessagesResponseWriter
{
    public static void Write(ChatResponse response, string model, TokenUsage usage, bool omitThinking, IBufferWriter<byte> output)
    {
        using var json = new Utf8JsonWriter(output, JsonOutput.Options);
        json.WriteStartObject();
        json.WriteString("id"u8, MessagesStreamEncoder.MessageId(response.Id));
        json.WriteString("type"u8, "message"u8);
        json.WriteString("role"u8, "assistant"u8);
        json.WriteString("model"u8, model);
        json.WriteStartArray("content"u8);
        if (response.Reasoning is { Length: > 0 } reasoning)
        {
            json.WriteStartObject();
            json.WriteString("type"u8, "thinking"u8);
            json.WriteString("thinking"u8, omitThinking ? string.Empty : reasoning);
            json.WriteString("signature"u8, response.ReasoningSignature ?? AnthropicRequestMapper.GatewaySignaturePrefix + "unsigned");
            json.WriteEndObject();
        }

        if (response.Text.Length > 0 || response.ToolCalls.Count == 0)
        {
            json.WriteStartObject();
            json.WriteString("type"u8, "text"u8);
            json.WriteString("text"u8, response.Text);
            json.WriteEndObject();
        }

        foreach (var call in response.ToolCalls)
        {
            json.WriteStartObject();
            json.WriteString("type"u8, "tool_use"u8);
            json.WriteString("id"u8, call.Id);
            json.WriteString("name"u8, call.Name);
            json.WritePropertyName("input"u8);
            WriteInput(json, call.ArgumentsJson);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteString("stop_reason"u8, StopReason(response.Finish));
        json.WriteNull("stop_sequence"u8);
        WriteUsage(json, usage);
        json.WriteEndObject();
    }

    /// <summary>Anthropic's usage: <c>input_tokens</c> excludes the cache reads and writes, counted apart.</summary>
    public static void WriteUsage(Utf8JsonWriter json, in TokenUsage usage)
    {
        json.WriteStartObject("usage"u8);
        json.WriteNumber("input_tokens"u8, usage.UncachedInput);
        json.WriteNumber("cache_creation_input_tokens"u8, usage.CacheWrite);
        json.WriteNumber("cache_read_input_tokens"u8, usage.CacheRead);
        json.WriteNumber("output_tokens"u8, usage.Output);
        json.WriteEndObject();
    }

    public static string StopReason(FinishReason reason) => reason switch
    {
        FinishReason.Length => "max_tokens",
        FinishReason.ToolCalls or FinishReason.FunctionCall => "tool_use",
        FinishReason.ContentFilter => "refusal",
        _ => "end_turn",
    };

    // Tool input is a JSON object; arguments a model wrote that do not parse as one are sent as an empty object.
    private static void WriteInput(Utf8JsonWriter json, string arguments)
    {
        var bytes = Encoding.UTF8.GetBytes(arguments);
        var reader = new Utf8JsonReader(bytes);
        try
        {
            if (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                reader.Skip();
                if (!reader.Read())
                {
                    json.WriteRawValue(bytes, skipInputValidation: true);
                    return;
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON: falls through to the empty object.
        }

        json.WriteStartObject();
        json.WriteEndObject();
    }
}
