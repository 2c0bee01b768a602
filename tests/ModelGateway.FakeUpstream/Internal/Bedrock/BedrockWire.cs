using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Bedrock;

/// <summary>
/// AWS Bedrock Runtime: <c>POST /model/{modelId}/converse</c> and <c>/model/{modelId}/converse-stream</c>. The model
/// id is URL-decoded from the path (inference profiles such as <c>us.anthropic.claude-...-v2:0</c> and ARNs work), and
/// with <see cref="FakeUpstreamOptions.AwsCredentials"/> set every request's SigV4 signature is recomputed and checked.
/// </summary>
internal sealed class BedrockWire : ProviderWire
{
    public const string Converse = "converse";
    public const string ConverseStream = "converse-stream";
    private const string Prefix = "/model/";

    private readonly WireServices _services;

    public BedrockWire(WireServices services) => _services = services;

    public override bool TryMatch(HttpRequest request, out WireRoute route)
    {
        route = default;
        var raw = RawPath(request.HttpContext);
        if (!HttpMethods.IsPost(request.Method) || !raw.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        // The raw target keeps %2F inside an ARN model id, so the operation is the last raw segment.
        var slash = raw.LastIndexOf('/');
        var operation = raw[(slash + 1)..];
        if (slash <= Prefix.Length || operation is not (Converse or ConverseStream))
        {
            return false;
        }

        route = new WireRoute(UpstreamWire.Bedrock, operation, Uri.UnescapeDataString(raw[Prefix.Length..slash]));
        return true;
    }

    public override async Task HandleAsync(WireCall call)
    {
        var context = call.Context;
        var requestId = WireIds.AwsRequest();
        context.Response.Headers["x-amzn-RequestId"] = requestId;
        if (_services.Options.AwsCredentials is { } credentials
            && SigV4Verifier.Verify(context.Request, RawPath(context), call.Body, credentials, _services.Options.AwsRegion, "bedrock", _services.Time.GetUtcNow()) is { } failure)
        {
            var status = failure.ExceptionType == "IncompleteSignatureException" ? 400 : 403;
            await RefuseAsync(call, BedrockErrors.Create(status, failure.ExceptionType, failure.Message, requestId)).ConfigureAwait(false);
            return;
        }

        var stream = call.Route.Operation == ConverseStream;
        ConverseRequest parsed;
        try
        {
            using var document = JsonDocument.Parse(call.Body, JsonFormat.DocumentOptions);
            parsed = ConverseRequest.Parse(document.RootElement, call.Route.PathModel!, stream);
        }
        catch (JsonException)
        {
            await RefuseAsync(call, BedrockErrors.Create(400, "SerializationException", "Start of structure or map found where not expected.", requestId)).ConfigureAwait(false);
            return;
        }

        if (parsed.Facts is not { } facts)
        {
            await RefuseAsync(call, BedrockErrors.Create(400, "ValidationException", parsed.Error!, requestId)).ConfigureAwait(false);
            return;
        }

        var behavior = _services.Take(facts.Model);
        var answer = new ConverseAnswer(behavior, Reply.Build(behavior, facts, WireIds.BedrockToolUse), requestId);
        await _services.Responder.RespondAsync(context, behavior, answer, stream, call.State, call.CancellationToken).ConfigureAwait(false);
    }

    /// <summary>The path exactly as the client sent it (still percent-encoded), which is what SigV4 signs.</summary>
    private static string RawPath(HttpContext context)
    {
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? context.Request.Path.Value ?? "/";
        var query = target.IndexOf('?', StringComparison.Ordinal);
        return query < 0 ? target : target[..query];
    }

    private static Task RefuseAsync(WireCall call, WireError error) =>
        WireResponder.WriteErrorAsync(call.Context, error, null, call.State, call.CancellationToken);
}
