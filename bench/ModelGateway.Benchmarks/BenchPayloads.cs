using System.Globalization;
using System.Text;

namespace ModelGateway.Benchmarks;

/// <summary>Request and response bodies shaped like OpenAI's (and the fake upstream's), for the wire benchmarks.</summary>
internal static class BenchPayloads
{
    private const string ChunkPrefix =
        """data: {"id":"chatcmpl-JzIA1kAgGB9bPwneJWYrDLRCY7eg5","object":"chat.completion.chunk","created":1795511211,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_fake0001","choices":[{"index":0,"delta":""";

    /// <summary>A non-streamed chat completion with usage, as the fake upstream answers (633 bytes).</summary>
    public static readonly byte[] ChatCompletion = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-JzIA1kAgGB9bPwneJWYrDLRCY7eg5","object":"chat.completion","created":1795511211,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from gpt-4o-mini. This reply is streamed in pieces.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":20,"total_tokens":27,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fake0001"}""");

    /// <summary>A chat request of about <paramref name="approximateBytes"/>: a system prompt, then user/assistant turns of English prose.</summary>
    public static string ChatRequest(int approximateBytes, bool stream = true)
    {
        const string Sentence = "The quick brown fox jumps over the lazy dog while the sea wind carries salt across the harbour. ";
        var builder = new StringBuilder(approximateBytes + 256);
        builder.Append("""{"model":"bench","messages":[{"role":"system","content":"You are a helpful assistant."}""");
        var turn = 0;
        while (builder.Length < approximateBytes)
        {
            builder.Append(turn % 2 == 0 ? ",{\"role\":\"user\",\"content\":\"" : ",{\"role\":\"assistant\",\"content\":\"");
            for (var i = 0; i < 6 && builder.Length < approximateBytes; i++)
            {
                builder.Append(Sentence);
            }

            builder.Append("\"}");
            turn++;
        }

        builder.Append("],\"temperature\":0.7,\"max_tokens\":200");
        builder.Append(stream ? ",\"stream\":true}" : "}");
        return builder.ToString();
    }

    /// <summary>
    /// A streamed chat completion as OpenAI sends it: a role chunk, <paramref name="contentChunks"/>
    /// content chunks, a finish chunk, the usage chunk and <c>[DONE]</c>. Each element is one event
    /// with its blank line, so a test stream can hand them over one network read at a time.
    /// </summary>
    public static byte[][] ChatStreamEvents(int contentChunks)
    {
        var events = new List<byte[]>(contentChunks + 4)
        {
            Event(ChunkPrefix + """{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"""),
        };
        for (var i = 0; i < contentChunks; i++)
        {
            events.Add(Event(ChunkPrefix + string.Create(CultureInfo.InvariantCulture, $$"""{"content":"word{{i}} "},"logprobs":null,"finish_reason":null}],"usage":null}""")));
        }

        events.Add(Event(ChunkPrefix + """{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"""));
        events.Add(Event(
            """data: {"id":"chatcmpl-JzIA1kAgGB9bPwneJWYrDLRCY7eg5","object":"chat.completion.chunk","created":1795511211,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_fake0001","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":20,"total_tokens":27,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"""));
        events.Add(Event("data: [DONE]"));
        return [.. events];
    }

    private static byte[] Event(string line) => Encoding.UTF8.GetBytes(line + "\n\n");
}
