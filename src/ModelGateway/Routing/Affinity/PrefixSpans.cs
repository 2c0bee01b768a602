using System.IO.Hashing;
using System.Text.Json;

namespace ModelGateway.Routing.Affinity;

/// <summary>One cumulative prompt prefix: its hash and its estimated length in tokens.</summary>
internal readonly record struct PrefixSpan(ulong Hash, int Tokens);

/// <summary>
/// Cuts a request body into cumulative prompt prefixes at message boundaries: first the system prompt
/// (<c>system</c>, <c>instructions</c>) and tools, whatever their order in the body, then each earlier
/// turn in turn. Two requests share a span when they share those JSON tokens, which is what a provider's
/// prompt cache and vLLM's prefix cache key on too; <c>cache_control</c> markers are left out, because
/// Anthropic clients move them to the newest turn on every request. Only runs for routes with affinity on.
/// </summary>
internal static class PrefixSpans
{
    /// <summary>The longest spans kept per request (plus the system-and-tools span): a long conversation is matched by its recent turns.</summary>
    public const int MaxSpans = 16;

    /// <summary>
    /// The spans of at least <paramref name="minTokens"/> estimated tokens, longest first. Reads chat
    /// completions and Anthropic Messages (<c>messages</c>) and the Responses API (<c>input</c>).
    /// </summary>
    public static PrefixSpan[] Compute(ReadOnlySpan<byte> body, ulong seed, int minTokens)
    {
        try
        {
            return ComputeCore(body, seed, minTokens);
        }
        catch (JsonException)
        {
            // The protocol's parser accepted the body; anything this reader trips on just means no affinity.
            return [];
        }
    }

    private static PrefixSpan[] ComputeCore(ReadOnlySpan<byte> body, ulong seed, int minTokens)
    {
        Range system = default, tools = default, turns = default;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 256 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return [];
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isSystem = reader.ValueTextEquals("system"u8) || reader.ValueTextEquals("instructions"u8);
            var isTools = reader.ValueTextEquals("tools"u8) || reader.ValueTextEquals("functions"u8);
            var isTurns = reader.ValueTextEquals("messages"u8) || reader.ValueTextEquals("input"u8);
            reader.Read();
            var start = (int)reader.TokenStartIndex;
            reader.Skip();
            var value = start..(int)reader.BytesConsumed;
            if (isSystem)
            {
                system = value;
            }
            else if (isTools)
            {
                tools = value;
            }
            else if (isTurns)
            {
                turns = value;
            }
        }

        var spans = new Collector(new XxHash64(unchecked((long)seed)), stackalloc PrefixSpan[MaxSpans], minTokens);
        PrefixSpan? head = null;
        if (body[system].Length + body[tools].Length > 0)
        {
            var headBytes = AppendCanonical(spans.Hasher, body[system]) + AppendCanonical(spans.Hasher, body[tools]);
            spans.Bytes = headBytes;
            var tokens = Tokens(headBytes, 1);
            if (tokens >= minTokens)
            {
                head = new PrefixSpan(spans.Hasher.GetCurrentHashAsUInt64(), tokens);
            }
        }

        var list = body[turns];
        if (list.Length > 0)
        {
            var items = new Utf8JsonReader(list, new JsonReaderOptions { MaxDepth = 256 });
            items.Read();
            if (items.TokenType == JsonTokenType.StartArray)
            {
                while (items.Read() && items.TokenType != JsonTokenType.EndArray)
                {
                    var start = (int)items.TokenStartIndex;
                    items.Skip();
                    spans.Add(list[start..(int)items.BytesConsumed]);
                }
            }
            else
            {
                // A Responses input given as one string is one turn.
                spans.Add(list);
            }
        }

        var result = new PrefixSpan[spans.Filled + (head is null ? 0 : 1)];
        for (var i = 0; i < spans.Filled; i++)
        {
            // Newest (longest) first: a lookup tries the longest shared prefix first.
            result[i] = spans.Recent[(spans.Next - 1 - i + MaxSpans) % MaxSpans];
        }

        if (head is { } systemAndTools)
        {
            result[^1] = systemAndTools;
        }

        return result;
    }

    // Keeps the last MaxSpans qualifying spans in a ring, on the stack.
    private ref struct Collector(XxHash64 hasher, Span<PrefixSpan> recent, int minTokens)
    {
        public readonly XxHash64 Hasher = hasher;
        public readonly Span<PrefixSpan> Recent = recent;
        public long Bytes;
        public int Filled;
        public int Next;
        private int _turns;

        public void Add(ReadOnlySpan<byte> turn)
        {
            Bytes += AppendCanonical(Hasher, turn);
            _turns++;
            var tokens = Tokens(Bytes, _turns + 1);
            if (tokens < minTokens)
            {
                return;
            }

            Recent[Next] = new PrefixSpan(Hasher.GetCurrentHashAsUInt64(), tokens);
            Next = (Next + 1) % MaxSpans;
            Filled = Math.Min(Filled + 1, MaxSpans);
        }
    }

    // Hashes a JSON value token by token (kind and raw value), skipping cache_control; returns the bytes hashed.
    private static long AppendCanonical(XxHash64 hasher, ReadOnlySpan<byte> json)
    {
        if (json.IsEmpty)
        {
            return 0;
        }

        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
        Span<byte> kind = stackalloc byte[1];
        long bytes = 0;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("cache_control"u8))
            {
                reader.Read();
                reader.Skip();
                continue;
            }

            kind[0] = (byte)reader.TokenType;
            hasher.Append(kind);
            hasher.Append(reader.ValueSpan);
            bytes += reader.ValueSpan.Length + 1;
        }

        return bytes;
    }

    // The TokenEstimator's figure: about four bytes a token, plus each message's template overhead.
    private static int Tokens(long bytes, int messages)
        => (int)Math.Min(int.MaxValue, ((bytes + 3) / 4) + ((long)messages * TokenEstimator.PerMessageOverhead));
}
