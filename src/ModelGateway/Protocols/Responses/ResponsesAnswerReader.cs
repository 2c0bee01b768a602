using System.Text;
using System.Text.Json;
using ModelGateway.Canonical;

namespace ModelGateway.Protocols.Responses;

/// <summary>
/// Reads a whole Responses API <c>response</c> object (a non-streamed body, or the one a terminal stream
/// event carries) into the canonical answer: output text, reasoning summary, function calls, usage and
/// why it ended. What the response cache stores from a Responses answer.
/// </summary>
internal static class ResponsesAnswerReader
{
    /// <summary>The canonical answer of a completed or incomplete response; null for a failed one or another shape.</summary>
    public static ChatResponse? Read(ReadOnlySpan<byte> body)
    {
        using var document = JsonDocument.Parse(body.ToArray());
        var response = document.RootElement;
        if (response.ValueKind != JsonValueKind.Object || String(response, "object") is not ("response" or null)
            || String(response, "status") is not ("completed" or "incomplete")
            || !response.TryGetProperty("output"u8, out var output) || output.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var text = new StringBuilder();
        StringBuilder? reasoning = null;
        var calls = new List<ToolCallResult>();
        foreach (var item in output.EnumerateArray())
        {
            switch (String(item, "type"))
            {
                case "message":
                    foreach (var part in Array(item, "content"))
                    {
                        if (String(part, "type") == "output_text")
                        {
                            text.Append(String(part, "text"));
                        }
                    }

                    break;
                case "reasoning":
                    foreach (var part in Array(item, "summary"))
                    {
                        (reasoning ??= new StringBuilder()).Append(String(part, "text"));
                    }

                    break;
                case "function_call":
                    calls.Add(new ToolCallResult(String(item, "call_id") ?? string.Empty, String(item, "name") ?? string.Empty, String(item, "arguments") ?? "{}"));
                    break;
            }
        }

        return new ChatResponse
        {
            Id = String(response, "id"),
            Model = String(response, "model"),
            Text = text.ToString(),
            Reasoning = reasoning?.ToString(),
            ToolCalls = calls,
            Finish = Finish(response, calls.Count > 0),
            Usage = Usage(response) ?? default,
        };
    }

    /// <summary>completed: stop (tool_calls when it called a function); incomplete: length or content_filter.</summary>
    public static FinishReason Finish(JsonElement response, bool calledTools)
        => String(response, "status") switch
        {
            "completed" => calledTools ? FinishReason.ToolCalls : FinishReason.Stop,
            "incomplete" => response.TryGetProperty("incomplete_details"u8, out var details) && String(details, "reason") == "content_filter"
                ? FinishReason.ContentFilter
                : FinishReason.Length,
            _ => FinishReason.None,
        };

    /// <summary>OpenAI's Responses usage: cached tokens are part of <c>input_tokens</c>, reasoning of <c>output_tokens</c>, as canonically.</summary>
    public static TokenUsage? Usage(JsonElement response)
    {
        if (response.ValueKind != JsonValueKind.Object || !response.TryGetProperty("usage"u8, out var usage) || usage.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        return new TokenUsage
        {
            Input = Number(usage, "input_tokens"),
            CacheRead = usage.TryGetProperty("input_tokens_details"u8, out var input) ? Number(input, "cached_tokens") : 0,
            Output = Number(usage, "output_tokens"),
            Reasoning = usage.TryGetProperty("output_tokens_details"u8, out var output) ? Number(output, "reasoning_tokens") : 0,
            Reported = true,
        };
    }

    public static string? String(JsonElement element, string name)
        => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static long Number(JsonElement element, string name)
        => element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var n) ? n : 0;

    private static IEnumerable<JsonElement> Array(JsonElement element, string name)
        => element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Array ? value.EnumerateArray() : [];
}
