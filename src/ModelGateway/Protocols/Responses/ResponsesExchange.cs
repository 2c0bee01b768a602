using System.Security.Cryptography;
using System.Text.Json;
using ModelGateway.State.Responses;

namespace ModelGateway.Protocols.Responses;

/// <summary>
/// What the Responses protocol keeps about one request between its hooks: where the body's fields are
/// (for echoing them in the <c>response</c> object and splicing a follow-up's history), the stored
/// response a <c>previous_response_id</c> named, the id the answer will carry, and what the translation
/// dropped. Lives in <see cref="Forwarding.GatewayRequest.ProtocolState"/>.
/// </summary>
internal sealed class ResponsesExchange
{
    /// <summary>Fields of the request the <c>response</c> object repeats, as OpenAI's does.</summary>
    private static readonly string[] EchoedFields =
    [
        "instructions", "max_output_tokens", "max_tool_calls", "metadata", "parallel_tool_calls", "previous_response_id",
        "prompt_cache_key", "reasoning", "safety_identifier", "service_tier", "temperature", "text", "tool_choice", "tools",
        "top_logprobs", "top_p", "truncation", "user",
    ];

    private readonly Dictionary<string, (int Start, int Length)> _echo = new(StringComparer.Ordinal);

    private ResponsesExchange(string id)
    {
        ResponseId = id;
    }

    /// <summary>The id of the answer: made here for translated answers; the upstream's for pass-through ones.</summary>
    public string ResponseId { get; set; }

    /// <summary><c>store</c> (true unless the client said false): whether the answer is kept for follow-ups.</summary>
    public bool Store { get; private set; } = true;

    /// <summary>The client asked for <c>reasoning.encrypted_content</c> (as Codex does): reasoning items carry it.</summary>
    public bool IncludeEncryptedReasoning { get; private set; }

    public string? PreviousResponseId { get; private set; }

    /// <summary>The stored response <see cref="PreviousResponseId"/> names, when the gateway made it.</summary>
    public StoredResponse? Previous { get; set; }

    /// <summary>The stored conversation as OpenAI takes it inline, made once for every pass-through attempt.</summary>
    public byte[]? PassThroughHistory { get; set; }

    /// <summary>Where <c>previous_response_id</c>'s value is, for a pass-through follow-up that sends the history inline.</summary>
    public (int Start, int Length) PreviousValue { get; private set; }

    /// <summary>Where <c>input</c>'s value is (length 0 when absent), and whether it is a string.</summary>
    public (int Start, int Length) InputValue { get; private set; }

    public bool InputIsString { get; private set; }

    /// <summary>The built-in tools a translated request left out (<c>web_search</c>, <c>namespace</c>...).</summary>
    public List<string> DroppedTools { get; } = [];

    /// <summary>The encoder of a translated answer, which holds its output items once written.</summary>
    public ResponsesStreamEncoder? Encoder { get; set; }

    /// <summary>Reads where the top-level fields are; the body was validated by the parser.</summary>
    public static ResponsesExchange Read(ReadOnlySpan<byte> body)
    {
        var exchange = new ResponsesExchange(NewId("resp_"));
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 256 });
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString()!;
            reader.Read();
            var start = (int)reader.TokenStartIndex;
            switch (name)
            {
                case "store":
                    exchange.Store = reader.TokenType != JsonTokenType.False;
                    break;
                case "previous_response_id" when reader.TokenType == JsonTokenType.String:
                    exchange.PreviousResponseId = reader.GetString();
                    break;
                case "input":
                    exchange.InputIsString = reader.TokenType == JsonTokenType.String;
                    break;
                case "include" when reader.TokenType == JsonTokenType.StartArray:
                    var include = reader;
                    while (include.Read() && include.TokenType == JsonTokenType.String)
                    {
                        exchange.IncludeEncryptedReasoning |= include.ValueTextEquals("reasoning.encrypted_content"u8);
                    }

                    break;
            }

            reader.Skip();
            var length = (int)reader.BytesConsumed - start;
            if (name == "input")
            {
                exchange.InputValue = (start, length);
            }
            else if (name == "previous_response_id")
            {
                exchange.PreviousValue = (start, length);
            }

            if (Array.IndexOf(EchoedFields, name) >= 0)
            {
                exchange._echo[name] = (start, length);
            }
        }

        return exchange;
    }

    /// <summary>The raw JSON of a request field the response object repeats, or empty when the request left it out.</summary>
    public ReadOnlySpan<byte> Echo(ReadOnlySpan<byte> body, string name)
        => _echo.TryGetValue(name, out var at) ? body.Slice(at.Start, at.Length) : default;

    /// <summary>An id shaped like OpenAI's (<c>resp_</c>, <c>msg_</c>, <c>fc_</c>, <c>rs_</c> and 48 hex digits).</summary>
    public static string NewId(string prefix) => prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
}
