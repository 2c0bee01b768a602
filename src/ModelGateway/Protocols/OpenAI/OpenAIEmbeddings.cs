using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.OpenAI;

/// <summary>
/// OpenAI's embeddings API on the translated path: the request read into <see cref="EmbeddingRequest"/>
/// and a provider's vectors written back as OpenAI's <c>list</c> of <c>embedding</c> objects, as floats or,
/// when the client asked (the OpenAI SDKs do by default), as base64 of little-endian float32.
/// </summary>
internal static class OpenAIEmbeddings
{
    /// <exception cref="InvalidOperationException">The input is token ids, which only OpenAI-wire deployments take.</exception>
    public static EmbeddingRequest Read(ReadOnlySpan<byte> body)
    {
        var request = new EmbeddingRequest();
        var reader = new Utf8JsonReader(body);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("input"u8))
            {
                reader.Read();
                ReadInput(ref reader, request.Inputs);
            }
            else if (reader.ValueTextEquals("dimensions"u8))
            {
                reader.Read();
                request.Dimensions = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var dimensions) && dimensions > 0 ? dimensions : null;
            }
            else if (reader.ValueTextEquals("user"u8))
            {
                reader.Read();
                request.User = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("encoding_format"u8))
            {
                reader.Read();
                request.Base64 = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("base64"u8);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return request;
    }

    private static void ReadInput(ref Utf8JsonReader reader, List<string> inputs)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            inputs.Add(reader.GetString()!);
            return;
        }

        if (reader.TokenType == JsonTokenType.StartArray)
        {
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                if (reader.TokenType != JsonTokenType.String)
                {
                    throw new InvalidOperationException("this deployment embeds text only: send input as a string or an array of strings, not token ids");
                }

                inputs.Add(reader.GetString()!);
            }

            return;
        }

        throw new InvalidOperationException("input must be a string or an array of strings");
    }

    public static void Write(EmbeddingResponse response, bool base64, string model, IBufferWriter<byte> output)
    {
        using var json = new Utf8JsonWriter(output, JsonOutput.Options);
        json.WriteStartObject();
        json.WriteString("object"u8, "list"u8);
        json.WriteStartArray("data"u8);
        for (var i = 0; i < response.Vectors.Count; i++)
        {
            var vector = response.Vectors[i];
            json.WriteStartObject();
            json.WriteString("object"u8, "embedding"u8);
            json.WriteNumber("index"u8, i);
            if (base64)
            {
                // float32 in little-endian order, as OpenAI encodes it (and as every platform .NET runs on stores it).
                json.WriteBase64String("embedding"u8, MemoryMarshal.AsBytes(vector.AsSpan()));
            }
            else
            {
                json.WriteStartArray("embedding"u8);
                foreach (var value in vector)
                {
                    json.WriteNumberValue(value);
                }

                json.WriteEndArray();
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteString("model"u8, model);
        json.WriteStartObject("usage"u8);
        json.WriteNumber("prompt_tokens"u8, response.Usage.Input);
        json.WriteNumber("total_tokens"u8, response.Usage.Input);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
