using System.Buffers;
using System.Text.Json;
using ModelGateway.Wire;

namespace ModelGateway.State.Responses;

/// <summary>How the gateway holds a stored response.</summary>
internal enum StoredResponseKind : byte
{
    /// <summary>The gateway translated it and holds its whole state: the context items and the response object.</summary>
    Translated,

    /// <summary>An OpenAI or Azure deployment made and holds it; the gateway remembers only which deployment.</summary>
    PassThrough,
}

/// <summary>
/// One response kept for follow-ups (<c>previous_response_id</c>) and for <c>GET</c>/<c>DELETE
/// /v1/responses/{id}</c>: for a translated response the items a follow-up continues from (the whole
/// conversation so far, input and output, as Responses API items) and the response object; for a
/// pass-through one the deployment whose provider account holds it.
/// </summary>
internal sealed class StoredResponse
{
    public required string Id { get; init; }

    public required StoredResponseKind Kind { get; init; }

    /// <summary>The deployment that served it: a pass-through follow-up must go back there.</summary>
    public required string Deployment { get; init; }

    /// <summary>Translated: every item of the conversation up to and including this answer, as one JSON array.</summary>
    public ReadOnlyMemory<byte> Context { get; init; }

    /// <summary>Translated: the <c>response</c> object as the client received it.</summary>
    public ReadOnlyMemory<byte> Response { get; init; }

    /// <summary>Serialized for a shared store.</summary>
    public byte[] ToBytes()
    {
        var buffer = new ArrayBufferWriter<byte>(Context.Length + Response.Length + 128);
        using (var json = new Utf8JsonWriter(buffer, JsonOutput.Options))
        {
            json.WriteStartObject();
            json.WriteString("id"u8, Id);
            json.WriteString("kind"u8, Kind == StoredResponseKind.Translated ? "translated"u8 : "pass_through"u8);
            json.WriteString("deployment"u8, Deployment);
            if (!Context.IsEmpty)
            {
                json.WritePropertyName("context"u8);
                json.WriteRawValue(Context.Span, skipInputValidation: true);
            }

            if (!Response.IsEmpty)
            {
                json.WritePropertyName("response"u8);
                json.WriteRawValue(Response.Span, skipInputValidation: true);
            }

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public static StoredResponse FromBytes(ReadOnlyMemory<byte> bytes)
    {
        var reader = new Utf8JsonReader(bytes.Span);
        reader.Read();
        string? id = null;
        string? deployment = null;
        var kind = StoredResponseKind.Translated;
        ReadOnlyMemory<byte> context = default;
        ReadOnlyMemory<byte> response = default;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString();
            reader.Read();
            var start = (int)reader.TokenStartIndex;
            switch (name)
            {
                case "id":
                    id = reader.GetString();
                    break;
                case "kind":
                    kind = reader.ValueTextEquals("pass_through"u8) ? StoredResponseKind.PassThrough : StoredResponseKind.Translated;
                    break;
                case "deployment":
                    deployment = reader.GetString();
                    break;
                default:
                    reader.Skip();
                    var slice = bytes[start..(int)reader.BytesConsumed];
                    if (name == "context")
                    {
                        context = slice;
                    }
                    else if (name == "response")
                    {
                        response = slice;
                    }

                    break;
            }
        }

        return new StoredResponse { Id = id ?? string.Empty, Kind = kind, Deployment = deployment ?? string.Empty, Context = context, Response = response };
    }
}

/// <summary>
/// Where stored responses live: in this process, or in Redis when state is in Redis so that a
/// follow-up works on any replica. Every entry is scoped to the key that made it: another key asking
/// for the same id finds nothing.
/// </summary>
internal interface IResponseStore
{
    /// <summary>Keeps a response for its time to live; failures are the caller's to log, never the client's.</summary>
    ValueTask SaveAsync(string scope, StoredResponse response, CancellationToken cancellationToken);

    /// <summary>The response, or null when it never existed, expired, was deleted, or belongs to another key.</summary>
    /// <exception cref="ResponseStoreUnavailableException">The shared store did not answer.</exception>
    ValueTask<StoredResponse?> GetAsync(string scope, string id, CancellationToken cancellationToken);

    /// <summary>Deletes the response; false when there was nothing (for this key) to delete.</summary>
    ValueTask<bool> DeleteAsync(string scope, string id, CancellationToken cancellationToken);
}

/// <summary>The shared response store could not be reached.</summary>
internal sealed class ResponseStoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
