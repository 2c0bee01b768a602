using System.Text.Json;

namespace ModelGateway.Wire;

/// <summary>What a request asks the gateway to do, whatever client API it came through.</summary>
internal enum Operation
{
    ChatCompletions,
    Completions,
    Embeddings,
}

/// <summary>What <c>response_format</c> asks for.</summary>
internal enum ResponseFormatKind
{
    None,
    Text,
    JsonObject,
    JsonSchema,
}

/// <summary>
/// What routing, limits and forwarding need to know about a request body, read in one
/// <see cref="System.Text.Json.Utf8JsonReader"/> pass by the client protocol's parser. The facts are
/// neutral; the offsets point into the body so the pass-through path can splice it (model rewritten,
/// usage requested) without re-serializing it.
/// </summary>
internal struct RequestInfo
{
    public int BodyStart;
    public int ModelStart;
    public int ModelLength;
    public bool Stream;
    public bool StreamOptionsPresent;
    public int StreamOptionsStart;
    public bool StreamOptionsEmpty;
    public bool? IncludeUsage;
    public int IncludeUsageStart;
    public int IncludeUsageLength;
    public int? MaxTokens;
    public int N;
    public bool HasTools;
    public int ImageCount;
    public ResponseFormatKind ResponseFormat;
    public int MessageCount;
    public int MessagesEnd;
    public long TextBytes;
    public long TokenIds;
    public int InputCount;

    /// <summary>Images and documents given by URL rather than inline (base64, a data: URL); some providers need the bytes.</summary>
    public int MediaUrlCount;

    /// <summary>
    /// <see cref="MaxTokens"/> is a ceiling the client sets whatever the model (Anthropic's required
    /// <c>max_tokens</c>: Claude Code sends its own model's maximum), not a demand: a deployment with a
    /// smaller output limit serves it clamped, instead of being excluded.
    /// </summary>
    public bool MaxTokensIsCeiling;

    /// <summary>Whether the client asked for the final usage chunk itself.</summary>
    public readonly bool ClientWantsUsage => IncludeUsage == true;
}

/// <summary>Why a request body was refused, in OpenAI's terms.</summary>
internal readonly record struct RequestProblem(string Message, string? Param, string Code = "invalid_request_error");

/// <summary>The <c>model</c> a request names: every client API has it at the top level, and parsers record where.</summary>
internal static class RequestModel
{
    public const int MaxLength = 256;

    /// <summary>Copies the requested model name into <paramref name="destination"/>; false when it does not fit.</summary>
    public static bool TryCopy(ReadOnlySpan<byte> body, in RequestInfo info, Span<char> destination, out int written)
    {
        written = 0;
        var reader = new Utf8JsonReader(body.Slice(info.ModelStart, info.ModelLength));
        if (!reader.Read() || reader.TokenType != JsonTokenType.String)
        {
            return false;
        }

        try
        {
            written = reader.CopyString(destination);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    public static string Get(ReadOnlySpan<byte> body, in RequestInfo info)
    {
        var reader = new Utf8JsonReader(body.Slice(info.ModelStart, info.ModelLength));
        reader.Read();
        return reader.GetString() ?? string.Empty;
    }
}
