using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.OpenAI;

/// <summary>Writes a canonical answer as OpenAI's <c>chat.completion</c> body.</summary>
internal static class OpenAIResponseWriter
{
    public static void Write(ChatResponse response, string model, long created, IBufferWriter<byte> output)
    {
        using var json = new Utf8JsonWriter(output, JsonOutput.Options);
        json.WriteStartObject();
        json.WriteString("id"u8, response.Id is { } id ? "chatcmpl-" + id : "chatcmpl-" + Guid.NewGuid().ToString("N"));
        json.WriteString("object"u8, "chat.completion"u8);
        json.WriteNumber("created"u8, created);
        json.WriteString("model"u8, model);
        json.WriteStartArray("choices"u8);
        json.WriteStartObject();
        json.WriteNumber("index"u8, 0);
        json.WriteStartObject("message"u8);
        json.WriteString("role"u8, "assistant"u8);
        if (response.Text.Length == 0 && response.ToolCalls.Count > 0)
        {
            json.WriteNull("content"u8);
        }
        else
        {
            json.WriteString("content"u8, response.Text);
        }

        if (response.Reasoning is { Length: > 0 } reasoning)
        {
            json.WriteString("reasoning_content"u8, reasoning);
        }

        json.WriteNull("refusal"u8);
        if (response.ToolCalls.Count > 0)
        {
            json.WriteStartArray("tool_calls"u8);
            foreach (var call in response.ToolCalls)
            {
                json.WriteStartObject();
                json.WriteString("id"u8, call.Id);
                json.WriteString("type"u8, "function"u8);
                json.WriteStartObject("function"u8);
                json.WriteString("name"u8, call.Name);
                json.WriteString("arguments"u8, call.ArgumentsJson);
                json.WriteEndObject();
                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();
        json.WriteNull("logprobs"u8);
        json.WriteString("finish_reason"u8, FinishText(response.Finish == FinishReason.None ? FinishReason.Stop : response.Finish));
        json.WriteEndObject();
        json.WriteEndArray();
        WriteUsage(json, response.Usage);
        json.WriteNull("system_fingerprint"u8);
        json.WriteEndObject();
    }

    /// <summary>OpenAI's usage object: cached and cache-written tokens are part of <c>prompt_tokens</c>.</summary>
    public static void WriteUsage(Utf8JsonWriter json, in TokenUsage usage)
    {
        json.WriteStartObject("usage"u8);
        json.WriteNumber("prompt_tokens"u8, usage.Input);
        json.WriteNumber("completion_tokens"u8, usage.Output);
        json.WriteNumber("total_tokens"u8, usage.Input + usage.Output);
        json.WriteStartObject("prompt_tokens_details"u8);
        json.WriteNumber("cached_tokens"u8, usage.CacheRead);
        if (usage.CacheWrite > 0)
        {
            json.WriteNumber("cache_write_tokens"u8, usage.CacheWrite);
        }

        json.WriteEndObject();
        json.WriteStartObject("completion_tokens_details"u8);
        json.WriteNumber("reasoning_tokens"u8, usage.Reasoning);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    public static string FinishText(FinishReason reason) => reason switch
    {
        FinishReason.Length => "length",
        FinishReason.ToolCalls => "tool_calls",
        FinishReason.ContentFilter => "content_filter",
        FinishReason.FunctionCall => "function_call",
        _ => "stop",
    };
}
