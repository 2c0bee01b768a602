using System.Text.Json;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.OpenAI;

/// <summary>
/// OpenAI's answers to a body that is not one well-formed JSON object, worded alike by chat completions
/// and the Responses API, so both parsers refuse such bodies with the same message.
/// </summary>
internal static class OpenAIBodyProblems
{
    public static RequestProblem NotSingleObject => new("The request body must be a single JSON object.", null);

    public static RequestProblem LoneSurrogate => new(
        "We could not parse the JSON body of your request: a string holds a \\u escape of a lone surrogate, which is not valid Unicode.", null, "invalid_unicode");

    public static RequestProblem Unparsable(JsonException exception, int maxDepth)
        => exception.Message.Contains("maximum configured depth", StringComparison.OrdinalIgnoreCase)
            ? new($"The JSON body is nested more than {maxDepth} levels deep.", null)
            : new("We could not parse the JSON body of your request. The API expects a JSON payload; what was sent was not valid JSON.", null);
}
