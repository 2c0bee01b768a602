using System.Buffers;
using System.Text.Json;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Protocols.Responses;
using ModelGateway.Providers;
using ModelGateway.State;
using ModelGateway.State.Responses;
using ModelGateway.Wire;

namespace ModelGateway.Endpoints;

/// <summary>
/// The Responses API: <c>POST /v1/responses</c> through the common pipeline, and the stored responses
/// behind <c>GET</c>/<c>DELETE /v1/responses/{id}</c>. Translated responses are answered from the
/// gateway's store; pass-through ones are fetched from (or deleted at) the deployment that holds them.
/// Either way a key sees only its own responses.
/// </summary>
internal static partial class ResponsesEndpoints
{
    public static IEndpointRouteBuilder MapResponsesEndpoints(this IEndpointRouteBuilder v1)
    {
        v1.MapPost("/responses", static context => context.RequestServices.GetRequiredService<CompletionHandler>()
            .HandleAsync(context, context.RequestServices.GetRequiredService<ResponsesProtocol>(), Operation.ChatCompletions));
        v1.MapGet("/responses/{id}", static context => StoredAsync(context, (string)context.Request.RouteValues["id"]!, delete: false));
        v1.MapDelete("/responses/{id}", static context => StoredAsync(context, (string)context.Request.RouteValues["id"]!, delete: true));
        return v1;
    }

    private static async Task StoredAsync(HttpContext context, string id, bool delete)
    {
        var services = context.RequestServices;
        var store = services.GetRequiredService<IResponseStore>();
        var caller = context.Features.Get<CallerIdentity>() ?? CallerIdentity.Anonymous;
        var scope = ResponsesProtocol.Scope(caller);
        StoredResponse? stored;
        try
        {
            stored = await store.GetAsync(scope, id, context.RequestAborted).ConfigureAwait(false);
        }
        catch (ResponseStoreUnavailableException)
        {
            await ApiError.Unavailable("The response store is unreachable; try again shortly.", "response_store_unavailable", TimeSpan.FromSeconds(1)).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        if (stored is null)
        {
            await NotFound(id).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        if (stored.Kind == StoredResponseKind.PassThrough)
        {
            await ForwardAsync(context, stored, delete).ConfigureAwait(false);
            if (delete && context.Response.StatusCode is >= 200 and < 300)
            {
                await TryDeleteAsync(store, scope, id, context).ConfigureAwait(false);
            }

            return;
        }

        if (!delete)
        {
            await WriteJsonAsync(context, stored.Response).ConfigureAwait(false);
            return;
        }

        if (!await TryDeleteAsync(store, scope, id, context).ConfigureAwait(false))
        {
            return;
        }

        var body = new ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(body, JsonOutput.Options))
        {
            json.WriteStartObject();
            json.WriteString("id"u8, id);
            json.WriteString("object"u8, "response.deleted"u8);
            json.WriteBoolean("deleted"u8, true);
            json.WriteEndObject();
        }

        await WriteJsonAsync(context, body.WrittenMemory).ConfigureAwait(false);
    }

    private static async Task<bool> TryDeleteAsync(IResponseStore store, string scope, string id, HttpContext context)
    {
        try
        {
            await store.DeleteAsync(scope, id, context.RequestAborted).ConfigureAwait(false);
            return true;
        }
        catch (ResponseStoreUnavailableException)
        {
            if (!context.Response.HasStarted)
            {
                await ApiError.Unavailable("The response store is unreachable; try again shortly.", "response_store_unavailable", TimeSpan.FromSeconds(1)).WriteAsync(context).ConfigureAwait(false);
            }

            return false;
        }
    }

    // The deployment that made a pass-through response holds it: the request goes there as it is.
    private static async Task ForwardAsync(HttpContext context, StoredResponse stored, bool delete)
    {
        var catalog = context.RequestServices.GetRequiredService<RoutingConfigManager>().Current;
        if (!catalog.Deployments.TryGetValue(stored.Deployment, out var deployment) || deployment.Provider.Adapter is not IRawForwardingAdapter adapter)
        {
            await NotFound(stored.Id).WriteAsync(context).ConfigureAwait(false);
            return;
        }

        var forwarder = context.RequestServices.GetRequiredService<RawForwarder>();
        await forwarder.ForwardAsync(context, deployment, adapter, delete ? HttpMethod.Delete : HttpMethod.Get, "responses/" + Uri.EscapeDataString(stored.Id), null).ConfigureAwait(false);
    }

    private static ApiError NotFound(string id) => new(404, $"Response with id '{id}' not found.", "invalid_request_error", "not_found", "response_id");

    private static Task WriteJsonAsync(HttpContext context, ReadOnlyMemory<byte> json)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = json.Length;
        return context.Response.Body.WriteAsync(json).AsTask();
    }
}
