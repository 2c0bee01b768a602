using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Anthropic;

/// <summary>
/// Anthropic's Messages API: <c>POST /v1/messages</c> (also with <c>?beta=true</c>) and
/// <c>POST /v1/messages/count_tokens</c>, with Anthropic's authentication, version and validation errors.
/// </summary>
internal sealed class AnthropicWire : ProviderWire
{
    public const string Messages = "messages";
    public const string CountTokens = "count_tokens";

    private static readonly HashSet<string> KnownVersions = new(StringComparer.Ordinal) { "2023-01-01", "2023-06-01", AnthropicRequest.Version20261021 };

    private readonly WireServices _services;

    public AnthropicWire(WireServices services) => _services = services;

    public override bool TryMatch(HttpRequest request, out WireRoute route)
    {
        route = default;
        if (!HttpMethods.IsPost(request.Method))
        {
            return false;
        }

        switch (request.Path.Value)
        {
            case "/v1/messages":
                route = new WireRoute(UpstreamWire.Anthropic, Messages, null);
                return true;
            case "/v1/messages/count_tokens":
                route = new WireRoute(UpstreamWire.Anthropic, CountTokens, null);
                return true;
            default:
                return false;
        }
    }

    public override string? ModelOf(WireRoute route, byte[] body) => BodyModel(body);

    public override async Task HandleAsync(WireCall call)
    {
        var request = call.Context.Request;
        var requestId = WireIds.AnthropicRequest();
        call.Context.Response.Headers["request-id"] = requestId;

        if (_services.Options.ExpectedApiKey is { } expected)
        {
            // Anthropic takes x-api-key when both are sent.
            var key = request.Headers["x-api-key"].ToString();
            if (key.Length == 0)
            {
                key = BearerToken(request);
            }

            if (key.Length == 0 || !string.Equals(key, expected, StringComparison.Ordinal))
            {
                var message = key.Length == 0 ? "x-api-key header is required" : "invalid x-api-key";
                await RefuseAsync(call, 401, "authentication_error", message, requestId).ConfigureAwait(false);
                return;
            }
        }

        var version = request.Headers["anthropic-version"].ToString();
        if (version.Length == 0)
        {
            await RefuseAsync(call, 400, "invalid_request_error", "anthropic-version: header is required", requestId).ConfigureAwait(false);
            return;
        }

        if (!KnownVersions.Contains(version))
        {
            await RefuseAsync(call, 400, "invalid_request_error", $"anthropic-version: '{version}' is not a valid version", requestId).ConfigureAwait(false);
            return;
        }

        await RespondAsync(_services, call, null, version, vertex: false, requestId).ConfigureAwait(false);
    }

    /// <summary>
    /// Parses and answers a Messages request body; shared with Claude on Vertex AI, where the model comes from the
    /// path and the version from the body's <c>anthropic_version</c>.
    /// </summary>
    public static async Task RespondAsync(WireServices services, WireCall call, string? pathModel, string? version, bool vertex, string requestId)
    {
        AnthropicRequest parsed;
        try
        {
            using var document = JsonDocument.Parse(call.Body, JsonFormat.DocumentOptions);
            parsed = AnthropicRequest.Parse(document.RootElement, pathModel, version, call.Route.Operation == CountTokens, vertex);
        }
        catch (JsonException ex)
        {
            await RefuseAsync(call, 400, "invalid_request_error", "There was an error parsing the body of your request: " + ex.Message, requestId).ConfigureAwait(false);
            return;
        }

        if (parsed.Facts is not { } facts)
        {
            await RefuseAsync(call, 400, "invalid_request_error", parsed.Error!, requestId).ConfigureAwait(false);
            return;
        }

        var behavior = services.Take(facts.Model);
        var now = services.Time.GetUtcNow();
        IWireAnswer answer = call.Route.Operation == CountTokens
            ? new CountTokensAnswer(behavior.PromptTokens ?? facts.PromptTokens, facts.Model, requestId, now)
            : new AnthropicAnswer(behavior, Reply.Build(behavior, facts, WireIds.AnthropicToolUse), facts, requestId, now, vertex);
        var stream = facts.Stream && call.Route.Operation != CountTokens;
        await services.Responder.RespondAsync(call.Context, behavior, answer, stream, call.State, call.CancellationToken).ConfigureAwait(false);
    }

    public static string? BodyModel(byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body, JsonFormat.DocumentOptions);
            return JsonBytes.String(document.RootElement, "model"u8);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string BearerToken(HttpRequest request)
    {
        const string Scheme = "Bearer ";
        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) ? authorization[Scheme.Length..].Trim() : string.Empty;
    }

    private static Task RefuseAsync(WireCall call, int status, string type, string message, string requestId) =>
        WireResponder.WriteErrorAsync(call.Context, AnthropicErrors.Create(status, type, message, requestId), null, call.State, call.CancellationToken);

    /// <summary><c>{"input_tokens":N}</c> for <c>count_tokens</c>.</summary>
    private sealed class CountTokensAnswer(int tokens, string model, string requestId, DateTimeOffset now) : IWireAnswer
    {
        public byte[] Body() => JsonBytes.Write(tokens, static (writer, tokens) =>
        {
            writer.WriteStartObject();
            writer.WriteNumber("input_tokens"u8, tokens);
            writer.WriteEndObject();
        });

        public StreamPlan Stream() => throw new NotSupportedException();

        public WireError Error(UpstreamBehavior behavior) => AnthropicErrors.ForBehavior(behavior, model, requestId, now);
    }
}
