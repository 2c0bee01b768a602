namespace ModelGateway.FakeUpstream.Internal.Wires;

/// <summary>Random identifiers shaped like each provider's.</summary>
internal static class WireIds
{
    private const string Alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    private const string Base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    private const string Hex = "0123456789abcdef";

    /// <summary>Anthropic message id, e.g. <c>msg_01XFDUDYJgAACzvnptvVoYEL</c>.</summary>
    public static string AnthropicMessage() => Create("msg_01", 22, Alphanumeric);

    /// <summary>Anthropic tool-use id, e.g. <c>toolu_01A09q90qw90lq917835lq9</c>.</summary>
    public static string AnthropicToolUse() => Create("toolu_01", 22, Alphanumeric);

    /// <summary>Anthropic request id, e.g. <c>req_011CSHoEeqs5C35K2UUqR7Fy</c>.</summary>
    public static string AnthropicRequest() => Create("req_011C", 20, Base58);

    /// <summary>Bedrock tool-use id, e.g. <c>tooluse_kZJMlvQmRJ6eAyJE5GIl7Q</c>.</summary>
    public static string BedrockToolUse() => Create("tooluse_", 22, Alphanumeric);

    /// <summary>Gemini <c>responseId</c>.</summary>
    public static string GeminiResponse() => Create(string.Empty, 22, Alphanumeric);

    /// <summary>AWS request id, a UUID.</summary>
    public static string AwsRequest() => Guid.NewGuid().ToString("D");

    /// <summary>An opaque base64 reasoning signature.</summary>
    public static string Signature()
    {
        var bytes = new byte[96];
        // Signatures only need to look the part; they are not checked.
#pragma warning disable CA5394
        Random.Shared.NextBytes(bytes);
#pragma warning restore CA5394
        return Convert.ToBase64String(bytes);
    }

    public static string HexId(int length) => Create(string.Empty, length, Hex);

    private static string Create(string prefix, int randomLength, string alphabet) =>
        string.Create(prefix.Length + randomLength, (prefix, alphabet), static (span, state) =>
        {
            state.prefix.CopyTo(span);
            // Ids only need to be unique enough for tests; they are not secrets.
#pragma warning disable CA5394
            Random.Shared.GetItems(state.alphabet, span[state.prefix.Length..]);
#pragma warning restore CA5394
        });
}
