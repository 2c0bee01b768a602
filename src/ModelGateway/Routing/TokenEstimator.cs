using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Wire;

namespace ModelGateway.Routing;

/// <summary>
/// Counts a request's input tokens. The cheap figures come from the parse (byte counts); the
/// tokenizer runs only when a request is close enough to a context window for the answer to matter.
/// </summary>
internal sealed class TokenEstimator
{
    /// <summary>Tokens a chat template adds per message (role, separators), as OpenAI documents.</summary>
    public const int PerMessageOverhead = 4;

    /// <summary>Tokens that prime the assistant's reply.</summary>
    public const int ReplyPriming = 3;

    /// <summary>A typical image (high detail, 1024×1024): 4 tiles × 170 + 85.</summary>
    public const int ImageTokensEstimate = 765;

    /// <summary>The most one image can cost (high detail, 8 tiles): used in upper bounds.</summary>
    public const int ImageTokensMax = 1445;

    /// <summary>Margin over the cl100k count for model families whose tokenizer we do not ship.</summary>
    public const double OtherFamilyFactor = 1.15;

    private readonly Lazy<Tokenizer> _o200k = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));
    private readonly Lazy<Tokenizer> _cl100k = new(() => TiktokenTokenizer.CreateForEncoding("cl100k_base"));

    /// <summary>Loads the vocabularies of <paramref name="kinds"/> so the first long request does not pay for it.</summary>
    public void WarmUp(IReadOnlySet<TokenizerKind> kinds)
    {
        foreach (var kind in kinds)
        {
            if (kind != TokenizerKind.Bytes)
            {
                _ = CountText("warm up", kind);
            }
        }
    }

    /// <summary>Never less than the true count for any byte-level tokenizer: every token covers at least one byte.</summary>
    public static long UpperBound(in RequestInfo info)
        => info.TextBytes + info.TokenIds + Overhead(info) + ((long)info.ImageCount * ImageTokensMax);

    /// <summary>A cheap estimate (about four bytes per token for English) for cost ranking and token budgets.</summary>
    public static long Estimate(in RequestInfo info)
        => ((info.TextBytes + 3) / 4) + info.TokenIds + Overhead(info) + ((long)info.ImageCount * ImageTokensEstimate);

    private static long Overhead(in RequestInfo info)
        => info.MessageCount > 0 ? ((long)info.MessageCount * PerMessageOverhead) + ReplyPriming : 0;

    /// <summary>The input count for a tokenizer family, computed once per request and kept.</summary>
    public long Count(GatewayRequest request, TokenizerKind kind)
    {
        if (kind == TokenizerKind.Bytes)
        {
            return UpperBound(request.Info);
        }

        var cached = request.GetExactTokens(kind);
        if (cached >= 0)
        {
            return cached;
        }

        var tokenizer = kind == TokenizerKind.O200k ? _o200k.Value : _cl100k.Value;
        long count = CountText(request.Body, request.Operation, tokenizer) + request.Info.TokenIds + Overhead(request.Info)
            + ((long)request.Info.ImageCount * ImageTokensEstimate);
        if (kind == TokenizerKind.Other)
        {
            count = (long)Math.Ceiling(count * OtherFamilyFactor);
        }

        var clamped = (int)Math.Min(count, int.MaxValue);
        request.SetExactTokens(kind, clamped);
        return clamped;
    }

    /// <summary>Counts the tokens of an arbitrary text, for output that the upstream did not report.</summary>
    public int CountText(string text, TokenizerKind kind) => kind switch
    {
        TokenizerKind.Bytes => Encoding.UTF8.GetByteCount(text),
        TokenizerKind.O200k => _o200k.Value.CountTokens(text),
        _ => _cl100k.Value.CountTokens(text),
    };

    // Walks the same fields the parser measured, now decoding and tokenizing each text.
    private static long CountText(ReadOnlySpan<byte> body, Operation operation, Tokenizer tokenizer)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 256 });
        var scratch = ArrayPool<char>.Shared.Rent(4096);
        long total = 0;
        try
        {
            reader.Read();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                // Chat completions carry the prompt in messages; an Anthropic Messages body has its system prompt at the
                // top level (an OpenAI body has no "system"); the Responses API has it in input and instructions.
                var counted = (operation == Operation.ChatCompletions && (reader.ValueTextEquals("messages"u8) || reader.ValueTextEquals("system"u8)
                        || reader.ValueTextEquals("input"u8) || reader.ValueTextEquals("instructions"u8)))
                    || (operation == Operation.Completions && reader.ValueTextEquals("prompt"u8))
                    || (operation == Operation.Embeddings && reader.ValueTextEquals("input"u8));
                var isTools = reader.ValueTextEquals("tools"u8) || reader.ValueTextEquals("functions"u8);
                reader.Read();
                if (counted)
                {
                    total += CountStrings(ref reader, tokenizer, ref scratch);
                }
                else if (isTools && reader.TokenType == JsonTokenType.StartArray)
                {
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    var raw = body.Slice(start, (int)reader.BytesConsumed - start);
                    total += CountUtf8(raw, tokenizer, ref scratch);
                }
                else
                {
                    reader.Skip();
                }
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(scratch);
        }

        return total;
    }

    // Counts every string inside the value the reader is on, except image URLs (their cost is per image).
    private static long CountStrings(ref Utf8JsonReader reader, Tokenizer tokenizer, ref char[] scratch)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return CountString(ref reader, tokenizer, ref scratch);
        }

        if (reader.TokenType is not (JsonTokenType.StartArray or JsonTokenType.StartObject))
        {
            return 0;
        }

        long total = 0;
        var depth = reader.CurrentDepth;
        while (reader.Read() && reader.CurrentDepth > depth)
        {
            // Anthropic's image and document "source" holds base64 bytes, and thinking "signature"s are opaque: not text.
            if (reader.TokenType == JsonTokenType.PropertyName && (reader.ValueTextEquals("image_url"u8) || reader.ValueTextEquals("input_audio"u8) || reader.ValueTextEquals("role"u8) || reader.ValueTextEquals("type"u8)
                || reader.ValueTextEquals("source"u8) || reader.ValueTextEquals("signature"u8)))
            {
                reader.Read();
                reader.Skip();
            }
            else if (reader.TokenType == JsonTokenType.String)
            {
                total += CountString(ref reader, tokenizer, ref scratch);
            }
        }

        return total;
    }

    private static int CountString(ref Utf8JsonReader reader, Tokenizer tokenizer, ref char[] scratch)
    {
        var needed = reader.ValueSpan.Length;
        if (scratch.Length < needed)
        {
            ArrayPool<char>.Shared.Return(scratch);
            scratch = ArrayPool<char>.Shared.Rent(needed);
        }

        var length = reader.CopyString(scratch);
        return tokenizer.CountTokens(scratch.AsSpan(0, length));
    }

    private static int CountUtf8(ReadOnlySpan<byte> utf8, Tokenizer tokenizer, ref char[] scratch)
    {
        if (scratch.Length < utf8.Length)
        {
            ArrayPool<char>.Shared.Return(scratch);
            scratch = ArrayPool<char>.Shared.Rent(utf8.Length);
        }

        var length = Encoding.UTF8.GetChars(utf8, scratch);
        return tokenizer.CountTokens(scratch.AsSpan(0, length));
    }
}
