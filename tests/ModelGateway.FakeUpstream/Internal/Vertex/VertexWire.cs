using ModelGateway.FakeUpstream.Internal.Anthropic;
using ModelGateway.FakeUpstream.Internal.Gemini;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Vertex;

/// <summary>
/// Vertex AI's regional publisher-model URLs, <c>/v1/projects/{p}/locations/{l}/publishers/{publisher}/models/{m}:{method}</c>:
/// Google models speak the Gemini wire (<c>generateContent</c>, <c>streamGenerateContent</c>, <c>countTokens</c>),
/// Anthropic models the Messages wire (<c>rawPredict</c>, <c>streamRawPredict</c>, body with <c>anthropic_version</c> and
/// no <c>model</c>). The caller presents an OAuth access token as <c>Authorization: Bearer</c>.
/// </summary>
internal sealed class VertexWire : ProviderWire
{
    public const string RawPredict = "rawPredict";
    public const string StreamRawPredict = "streamRawPredict";

    private readonly WireServices _services;

    public VertexWire(WireServices services) => _services = services;

    public override bool TryMatch(HttpRequest request, out WireRoute route)
    {
        route = default;
        if (!HttpMethods.IsPost(request.Method))
        {
            return false;
        }

        // /{version}/projects/{p}/locations/{l}/publishers/{publisher}/models/{model}:{method}
        var segments = (request.Path.Value ?? string.Empty).Split('/');
        if (segments.Length != 10 || segments[0].Length != 0 || segments[1] is not ("v1" or "v1beta1")
            || segments[2] != "projects" || segments[4] != "locations" || segments[6] != "publishers" || segments[8] != "models"
            || GeminiWire.SplitMethod(segments[9]) is not var (model, method))
        {
            return false;
        }

        UpstreamWire wire;
        switch (segments[7])
        {
            case "google":
                wire = UpstreamWire.VertexGemini;
                break;
            case "anthropic":
                wire = UpstreamWire.VertexAnthropic;
                break;
            default:
                return false;
        }

        route = new WireRoute(wire, method, model);
        return true;
    }

    public override async Task HandleAsync(WireCall call)
    {
        if (_services.Options.VertexAccessToken is { } expected)
        {
            const string Scheme = "Bearer ";
            var authorization = call.Context.Request.Headers.Authorization.ToString();
            var token = authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) ? authorization[Scheme.Length..].Trim() : string.Empty;
            if (!string.Equals(token, expected, StringComparison.Ordinal))
            {
                var error = GoogleErrors.Create(401, GoogleErrors.Unauthenticated, details: writer =>
                {
                    writer.WriteStartObject();
                    writer.WriteString("@type"u8, "type.googleapis.com/google.rpc.ErrorInfo"u8);
                    writer.WriteString("reason"u8, token.Length == 0 ? "CREDENTIALS_MISSING"u8 : "ACCESS_TOKEN_TYPE_UNSUPPORTED"u8);
                    writer.WriteString("domain"u8, "googleapis.com"u8);
                    writer.WriteStartObject("metadata"u8);
                    writer.WriteString("service"u8, "aiplatform.googleapis.com"u8);
                    writer.WriteString("method"u8, "google.cloud.aiplatform.v1.PredictionService." + char.ToUpperInvariant(call.Route.Operation[0]) + call.Route.Operation[1..]);
                    writer.WriteEndObject();
                    writer.WriteEndObject();
                });
                await WireResponder.WriteErrorAsync(call.Context, error, null, call.State, call.CancellationToken).ConfigureAwait(false);
                return;
            }
        }

        if (call.Route.Wire == UpstreamWire.VertexGemini)
        {
            await GeminiWire.RespondAsync(_services, call, vertex: true).ConfigureAwait(false);
            return;
        }

        if (call.Route.Operation is not (RawPredict or StreamRawPredict))
        {
            var notFound = GoogleErrors.Create(404, $"Method '{call.Route.Operation}' is not served by the fake for Claude on Vertex AI.");
            await WireResponder.WriteErrorAsync(call.Context, notFound, null, call.State, call.CancellationToken).ConfigureAwait(false);
            return;
        }

        await AnthropicWire.RespondAsync(_services, call, call.Route.PathModel, version: null, vertex: true, WireIds.AnthropicRequest()).ConfigureAwait(false);
    }
}
