using System.Collections.Concurrent;
using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Responses;

/// <summary>
/// OpenAI's Responses API: <c>POST /v1/responses</c> (Azure: <c>/openai/v1/responses</c>), and
/// <c>GET</c>/<c>DELETE</c> of stored responses. Answers as OpenAI does (typed, numbered events; the
/// <c>response</c> object with usage), keeps responses made with <c>store</c> not false, and refuses a
/// <c>previous_response_id</c> it did not make, as OpenAI's <c>previous_response_not_found</c>.
/// </summary>
internal sealed class ResponsesWire(WireServices services) : ProviderWire
{
    public const string Create = "create";
    public const string Get = "get";
    public const string Delete = "delete";

    private const string OpenAIPrefix = "/v1/responses";
    private const string AzurePrefix = "/openai/v1/responses";

    private readonly ConcurrentDictionary<string, byte[]> _stored = new(StringComparer.Ordinal);

    public override bool TryMatch(HttpRequest request, out WireRoute route)
    {
        route = default;
        var path = request.Path.Value ?? string.Empty;
        var rest = path.StartsWith(OpenAIPrefix, StringComparison.Ordinal) ? path[OpenAIPrefix.Length..]
            : path.StartsWith(AzurePrefix, StringComparison.Ordinal) ? path[AzurePrefix.Length..]
            : null;
        if (rest is null)
        {
            return false;
        }

        if (rest.Length == 0 && HttpMethods.IsPost(request.Method))
        {
            route = new WireRoute(UpstreamWire.OpenAIResponses, Create, null);
            return true;
        }

        if (rest.Length > 1 && rest[0] == '/' && rest.IndexOf('/', 1) < 0)
        {
            var id = Uri.UnescapeDataString(rest[1..]);
            if (HttpMethods.IsGet(request.Method) || HttpMethods.IsDelete(request.Method))
            {
                route = new WireRoute(UpstreamWire.OpenAIResponses, HttpMethods.IsGet(request.Method) ? Get : Delete, id);
                return true;
            }
        }

        return false;
    }

    public override string? ModelOf(WireRoute route, byte[] body) => route.Operation == Create ? Anthropic.AnthropicWire.BodyModel(body) : null;

    public override async Task HandleAsync(WireCall call)
    {
        var request = call.Context.Request;
        call.Context.Response.Headers["x-request-id"] = "req_" + WireIds.HexId(32);
        if (services.Options.ExpectedApiKey is { } expected)
        {
            var key = request.Headers["api-key"].ToString();
            var authorization = request.Headers.Authorization.ToString();
            if (key.Length == 0 && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                key = authorization[7..].Trim();
            }

            if (!string.Equals(key, expected, StringComparison.Ordinal))
            {
                await RefuseAsync(call, 401, key.Length == 0 ? ErrorBodies.MissingApiKey : ErrorBodies.OpenAIInvalidKey(key), "invalid_request_error", null, "invalid_api_key").ConfigureAwait(false);
                return;
            }
        }

        switch (call.Route.Operation)
        {
            case Get when _stored.TryGetValue(call.Route.PathModel!, out var stored):
                await WriteJsonAsync(call, stored).ConfigureAwait(false);
                return;
            case Delete when _stored.TryRemove(call.Route.PathModel!, out _):
                await WriteJsonAsync(call, JsonBytes.Write(call.Route.PathModel!, static (writer, id) =>
                {
                    writer.WriteStartObject();
                    writer.WriteString("id"u8, id);
                    writer.WriteString("object"u8, "response.deleted"u8);
                    writer.WriteBoolean("deleted"u8, true);
                    writer.WriteEndObject();
                })).ConfigureAwait(false);
                return;
            case Get or Delete:
                await RefuseAsync(call, 404, $"Response with id '{call.Route.PathModel}' not found.", "invalid_request_error", null, null).ConfigureAwait(false);
                return;
        }

        ResponsesRequest parsed;
        try
        {
            using var document = JsonDocument.Parse(call.Body, JsonFormat.DocumentOptions);
            parsed = ResponsesRequest.Parse(document.RootElement);
        }
        catch (JsonException)
        {
            await RefuseAsync(call, 400, "We could not parse the JSON body of your request.", "invalid_request_error", null, null).ConfigureAwait(false);
            return;
        }

        if (parsed.Error is { } error)
        {
            await RefuseAsync(call, 400, error.Message, "invalid_request_error", error.Param, error.Code).ConfigureAwait(false);
            return;
        }

        if (parsed.PreviousResponseId is { } previous && !_stored.ContainsKey(previous))
        {
            await RefuseAsync(call, 400, $"Previous response with id '{previous}' not found.", "invalid_request_error", "previous_response_id", "previous_response_not_found").ConfigureAwait(false);
            return;
        }

        var behavior = services.Take(parsed.Facts.Model);
        var answer = new ResponsesAnswer(behavior, Reply.Build(behavior, parsed.Facts, static () => "call_" + WireIds.HexId(24)), parsed, services.Time.GetUtcNow());
        if (parsed.Store && behavior.StatusCode is >= 200 and < 300)
        {
            _stored[answer.Id] = answer.Body();
        }

        await services.Responder.RespondAsync(call.Context, behavior, answer, parsed.Facts.Stream, call.State, call.CancellationToken).ConfigureAwait(false);
    }

    private static Task WriteJsonAsync(WireCall call, byte[] body)
        => WireResponder.WriteErrorAsync(call.Context, new WireError(200, body), null, call.State, call.CancellationToken);

    private static Task RefuseAsync(WireCall call, int status, string message, string type, string? param, string? code)
        => WireResponder.WriteErrorAsync(call.Context, new WireError(status, ErrorBodies.OpenAI(message, type, param, code)), null, call.State, call.CancellationToken);
}

/// <summary>What the fake reads from a Responses request.</summary>
internal sealed class ResponsesRequest
{
    public required RequestFacts Facts { get; init; }

    public string? PreviousResponseId { get; init; }

    public bool Store { get; init; } = true;

    public string? Instructions { get; init; }

    public (string Message, string? Param, string? Code)? Error { get; init; }

    public static ResponsesRequest Parse(JsonElement root)
    {
        var model = JsonBytes.String(root, "model"u8);
        if (model is null)
        {
            return new ResponsesRequest { Facts = new RequestFacts { Model = "unknown" }, Error = ("Missing required parameter: 'model'.", "model", "missing_required_parameter") };
        }

        var tools = new List<string>();
        if (JsonBytes.TryArray(root, "tools"u8, out var toolArray))
        {
            foreach (var tool in toolArray.EnumerateArray())
            {
                var type = JsonBytes.String(tool, "type"u8);
                if (type == "function" && JsonBytes.String(tool, "name"u8) is { } name)
                {
                    tools.Add(name);
                }
                else if (type is not ("web_search" or "web_search_preview" or "file_search" or "code_interpreter" or "image_generation" or "namespace" or "custom" or "mcp" or "computer_use_preview" or "local_shell"))
                {
                    return new ResponsesRequest { Facts = new RequestFacts { Model = model }, Error = ($"Invalid value: '{type}'. Supported values are: 'function', 'web_search', 'file_search', ...", "tools[0].type", "invalid_value") };
                }
            }
        }

        string? forced = null;
        var disabled = false;
        if (root.TryGetProperty("tool_choice"u8, out var choice))
        {
            disabled = choice.ValueKind == JsonValueKind.String && choice.GetString() == "none";
            forced = choice.ValueKind == JsonValueKind.Object ? JsonBytes.String(choice, "name"u8) : null;
        }

        long characters = JsonBytes.String(root, "instructions"u8)?.Length ?? 0;
        if (root.TryGetProperty("input"u8, out var input))
        {
            characters += JsonBytes.TextCharacters(input);
        }

        var reasoning = JsonBytes.TryObject(root, "reasoning"u8, out var r) && JsonBytes.String(r, "effort"u8) is { } effort && effort != "none";
        return new ResponsesRequest
        {
            Facts = new RequestFacts
            {
                Model = model,
                Stream = root.TryGetProperty("stream"u8, out var stream) && stream.ValueKind == JsonValueKind.True,
                PromptTokens = Math.Max(1, TokenEstimator.FromCharacters(characters)),
                ToolNames = tools,
                ForcedTool = forced,
                ToolsDisabled = disabled,
                ThinkingRequested = reasoning,
                MaxTokens = root.TryGetProperty("max_output_tokens"u8, out var max) && max.ValueKind == JsonValueKind.Number ? max.GetInt32() : null,
            },
            PreviousResponseId = JsonBytes.String(root, "previous_response_id"u8),
            Store = !(root.TryGetProperty("store"u8, out var store) && store.ValueKind == JsonValueKind.False),
            Instructions = JsonBytes.String(root, "instructions"u8),
        };
    }
}
