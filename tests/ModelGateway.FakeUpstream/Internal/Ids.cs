namespace ModelGateway.FakeUpstream.Internal;

/// <summary>Random identifiers shaped like OpenAI's.</summary>
internal static class Ids
{
    private const string Alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    private const string Hex = "0123456789abcdef";

    public static string ChatCompletion() => Create("chatcmpl-", 29, Alphanumeric);

    public static string TextCompletion() => Create("cmpl-", 29, Alphanumeric);

    public static string ToolCall() => Create("call_", 24, Alphanumeric);

    public static string Request() => Create("req_", 32, Hex);

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
