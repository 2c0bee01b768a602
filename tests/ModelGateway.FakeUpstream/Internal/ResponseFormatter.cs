using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>
/// Writes one kind of response body, or its stream chunks, as JSON. Per-response values go through
/// <see cref="ResponseFields"/> so the output can also be recorded as a template.
/// </summary>
internal abstract class ResponseFormatter
{
    public virtual int Choices => 1;

    /// <summary>Whether a stream opens with a role chunk before the content chunks.</summary>
    public virtual bool HasStartChunk => false;

    /// <summary>Number of content chunks in a stream.</summary>
    public virtual int PieceCount => 0;

    /// <summary>Whether chunks carry <c>"usage":null</c> and a final usage chunk follows the finish chunk.</summary>
    public virtual bool IncludeUsage => false;

    public abstract int CompletionTokens { get; }

    public abstract void WriteBody(Utf8JsonWriter writer, ResponseFields fields);

    public virtual void WriteStartChunk(Utf8JsonWriter writer, ResponseFields fields, int choice) =>
        throw new NotSupportedException();

    public virtual void WritePieceChunk(Utf8JsonWriter writer, ResponseFields fields, int choice, int piece) =>
        throw new NotSupportedException();

    public virtual void WriteFinishChunk(Utf8JsonWriter writer, ResponseFields fields, int choice) =>
        throw new NotSupportedException();

    public virtual void WriteUsageChunk(Utf8JsonWriter writer, ResponseFields fields) =>
        throw new NotSupportedException();

    /// <summary>Writes <c>{"id":..,"object":..,"created":..,"model":..</c>, leaving the object open.</summary>
    protected static void WriteHeader(Utf8JsonWriter writer, ResponseFields fields, ReadOnlySpan<byte> objectName, byte[] model)
    {
        writer.WriteStartObject();
        writer.WritePropertyName("id"u8);
        fields.WriteId(writer);
        writer.WriteString("object"u8, objectName);
        writer.WritePropertyName("created"u8);
        fields.WriteCreated(writer);
        JsonText.Write(writer, "model"u8, model);
    }
}
