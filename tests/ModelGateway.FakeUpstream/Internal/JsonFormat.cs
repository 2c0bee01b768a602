using System.Text.Encodings.Web;
using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>Shared JSON settings: compact output, non-ASCII text written as raw UTF-8 like OpenAI does.</summary>
internal static class JsonFormat
{
    public static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
        SkipValidation = true,
    };

    public static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 128 };
}
