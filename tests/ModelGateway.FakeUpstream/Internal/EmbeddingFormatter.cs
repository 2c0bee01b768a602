using System.Buffers.Binary;
using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>One embeddings input: a text, or pre-tokenised ids.</summary>
internal readonly record struct EmbeddingInput(string? Text, int[]? Tokens);

/// <summary><c>/v1/embeddings</c> bodies with deterministic, unit-length vectors.</summary>
internal sealed class EmbeddingFormatter : ResponseFormatter
{
    private readonly string _model;
    private readonly IReadOnlyList<EmbeddingInput> _inputs;
    private readonly int _dimensions;
    private readonly bool _base64;
    private readonly bool _words;

    public EmbeddingFormatter(string model, IReadOnlyList<EmbeddingInput> inputs, int dimensions, bool base64, bool words = false)
    {
        _words = words;
        _model = model;
        _inputs = inputs;
        _dimensions = dimensions;
        _base64 = base64;
    }

    public override int CompletionTokens => 0;

    public override void WriteBody(Utf8JsonWriter writer, ResponseFields fields)
    {
        writer.WriteStartObject();
        writer.WriteString("object"u8, "list"u8);
        writer.WriteStartArray("data"u8);
        var vector = new float[_dimensions];
        var bytes = _base64 ? new byte[_dimensions * sizeof(float)] : [];
        for (var i = 0; i < _inputs.Count; i++)
        {
            if (_words && _inputs[i].Text is { } text)
            {
                FillWords(vector, text);
            }
            else
            {
                Fill(vector, Seed(_inputs[i]));
            }

            writer.WriteStartObject();
            writer.WriteString("object"u8, "embedding"u8);
            writer.WriteNumber("index"u8, i);
            if (_base64)
            {
                for (var d = 0; d < vector.Length; d++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(d * sizeof(float)), vector[d]);
                }

                writer.WriteBase64String("embedding"u8, bytes);
            }
            else
            {
                writer.WriteStartArray("embedding"u8);
                foreach (var value in vector)
                {
                    writer.WriteNumberValue(value);
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        JsonText.Write(writer, "model"u8, JsonText.Encode(_model));
        writer.WriteStartObject("usage"u8);
        writer.WritePropertyName("prompt_tokens"u8);
        fields.WritePromptTokens(writer);
        writer.WritePropertyName("total_tokens"u8);
        fields.WriteTotalTokens(writer);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>The deterministic unit vector of a text: the same numbers the OpenAI wire sends for it.</summary>
    public static float[] VectorFor(string text, int dimensions)
    {
        var vector = new float[dimensions];
        Fill(vector, Seed(new EmbeddingInput(text, null)));
        return vector;
    }

    /// <summary>
    /// A hashed bag of words: each lower-cased word adds 1 to the slot its FNV-1a hash picks, then the vector
    /// is scaled to unit length. The cosine similarity of two texts is then the overlap of their words.
    /// </summary>
    private static void FillWords(float[] vector, string text)
    {
        Array.Clear(vector);
        foreach (var word in text.ToLowerInvariant().Split((char[])[' ', '\t', '\n', '\r', ',', '.', '?', '!', ';', ':', '"', '\''], StringSplitOptions.RemoveEmptyEntries))
        {
            vector[(int)(Seed(new EmbeddingInput(word, null)) % (ulong)vector.Length)] += 1;
        }

        double sumOfSquares = 0;
        foreach (var value in vector)
        {
            sumOfSquares += value * value;
        }

        var norm = sumOfSquares == 0 ? 1 : Math.Sqrt(sumOfSquares);
        for (var i = 0; i < vector.Length; i++)
        {
            vector[i] = (float)(vector[i] / norm);
        }
    }

    /// <summary>FNV-1a over the UTF-8 text (or the token ids): stable across processes, unlike string.GetHashCode.</summary>
    private static ulong Seed(EmbeddingInput input)
    {
        var hash = 14695981039346656037UL;
        if (input.Text is { } text)
        {
            Span<byte> buffer = stackalloc byte[4];
            foreach (var rune in text.EnumerateRunes())
            {
                var length = rune.EncodeToUtf8(buffer);
                for (var i = 0; i < length; i++)
                {
                    hash = (hash ^ buffer[i]) * 1099511628211UL;
                }
            }
        }
        else
        {
            hash = (hash ^ 0xFF) * 1099511628211UL; // keeps token input [] apart from text ""
            foreach (var token in input.Tokens ?? [])
            {
                hash = (hash ^ (uint)token) * 1099511628211UL;
            }
        }

        return hash;
    }

    private static void Fill(float[] vector, ulong seed)
    {
        var state = seed;
        double sumOfSquares = 0;
        var values = new double[vector.Length];
        for (var i = 0; i < values.Length; i++)
        {
            // SplitMix64 step, top 24 bits mapped to [-1, 1).
            state += 0x9E3779B97F4A7C15UL;
            var z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            values[i] = ((z >> 40) / (double)(1UL << 24) * 2.0) - 1.0;
            sumOfSquares += values[i] * values[i];
        }

        if (sumOfSquares == 0)
        {
            Array.Clear(vector);
            vector[0] = 1;
            return;
        }

        var norm = Math.Sqrt(sumOfSquares);
        for (var i = 0; i < vector.Length; i++)
        {
            vector[i] = (float)(values[i] / norm);
        }
    }
}
