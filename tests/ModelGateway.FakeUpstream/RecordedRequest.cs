using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelGateway.FakeUpstream;

/// <summary>One HTTP request as the fake received it, recorded before any delay or fault was applied.</summary>
public sealed record RecordedRequest
{
    public required string Method { get; init; }

    /// <summary>Request path, e.g. <c>/v1/chat/completions</c> or <c>/openai/deployments/gpt4o/chat/completions</c>.</summary>
    public required string Path { get; init; }

    /// <summary>Query string including the leading <c>?</c>, or empty.</summary>
    public required string QueryString { get; init; }

    /// <summary>Request headers; keys are case-insensitive, repeated values are joined with <c>", "</c>.</summary>
    public required IReadOnlyDictionary<string, string> Headers { get; init; }

    /// <summary>The raw request body.</summary>
    public required byte[] Body { get; init; }

    /// <summary>The body decoded as UTF-8.</summary>
    public string BodyText => Encoding.UTF8.GetString(Body);

    /// <summary>The body parsed as JSON (a fresh tree on every access), or null when it is not JSON.</summary>
    public JsonNode? Json
    {
        get
        {
            if (Body.Length == 0)
            {
                return null;
            }

            try
            {
                return JsonNode.Parse(Body);
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }

    /// <summary>
    /// The model the behaviour was chosen for: the body's <c>model</c> (OpenAI, Anthropic), the Azure deployment,
    /// or the model in the path (Gemini, Vertex AI, and Bedrock's URL-decoded model id).
    /// </summary>
    public string? Model { get; init; }

    /// <summary>The wire format the request came in on.</summary>
    public UpstreamWire Wire { get; init; }

    public required DateTimeOffset ReceivedAt { get; init; }

    /// <summary>Completes when the fake has finished handling the request.</summary>
    public required Task<RequestOutcome> Completion { get; init; }
}

/// <summary>How the handling of a recorded request ended.</summary>
public enum RequestOutcome
{
    /// <summary>The fake wrote its whole response (or ended the body cleanly as a fault asked).</summary>
    Completed,

    /// <summary>The client went away (<c>HttpContext.RequestAborted</c> fired) before the handler finished.</summary>
    ClientAborted,

    /// <summary>The fake itself aborted the connection, as a reset fault told it to.</summary>
    ServerFault,
}
