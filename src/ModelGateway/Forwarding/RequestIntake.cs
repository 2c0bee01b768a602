using System.Buffers;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using ModelGateway.Wire;

namespace ModelGateway.Forwarding;

/// <summary>
/// Takes a request in: checks its content type and size, buffers the body (refusing oversize
/// bodies before they are read), parses it, resolves the route and reads the latency-objective
/// header. Shared by the completion endpoints and <c>/v1/route/explain</c>.
/// </summary>
internal sealed class RequestIntake(RoutingConfigManager config, IOptions<GatewayOptions> options)
{
    public const string SloHeader = "x-modelgateway-slo-ttft";

    private readonly GatewayOptions _options = options.Value;

    /// <summary>Returns the error to send, or null when the request is ready to route.</summary>
    public async ValueTask<ApiError?> AcceptAsync(GatewayRequest request)
    {
        var context = request.HttpContext;
        if (context.Request.ContentType is { } contentType && !IsJson(contentType))
        {
            return ApiError.UnsupportedMediaType(contentType);
        }

        if (context.Request.ContentLength > _options.MaxRequestBodyBytes)
        {
            return ApiError.PayloadTooLarge(_options.MaxRequestBodyBytes);
        }

        if (!await ReadBodyAsync(request).ConfigureAwait(false))
        {
            return ApiError.PayloadTooLarge(_options.MaxRequestBodyBytes);
        }

        if (!request.Protocol.TryParse(request.Body, request.Operation, _options.MaxJsonDepth, out request.Info, out var problem))
        {
            return ApiError.BadRequest(problem);
        }

        request.Catalog = config.Current;
        if (!TryResolveRoute(request, out var route))
        {
            return ApiError.ModelNotFound(RequestModel.Get(request.Body, request.Info));
        }

        request.Route = route;
        if (!request.Caller.MayUseModel(route.Name))
        {
            return new ApiError(403, $"This API key is not allowed to use the model '{route.Name}'.", "invalid_request_error", "model_not_allowed", "model");
        }

        if (context.Request.Headers.TryGetValue(SloHeader, out var slo))
        {
            if (!Durations.TryParse(slo.ToString(), out var target) || target <= TimeSpan.Zero)
            {
                return ApiError.BadRequest($"Invalid {SloHeader} header: use a duration such as 500ms.", "invalid_header");
            }

            if (request.Caller.AllowSloOverride && (route.Slo?.AllowRequestOverride ?? true))
            {
                request.SloOverride = target;
            }
        }

        return null;
    }

    private static bool TryResolveRoute(GatewayRequest request, out ModelRoute route)
    {
        Span<char> model = stackalloc char[RequestModel.MaxLength];
        route = null!;
        return RequestModel.TryCopy(request.Body, request.Info, model, out var written) && request.Catalog.TryGetRoute(model[..written], out route);
    }

    private async ValueTask<bool> ReadBodyAsync(GatewayRequest request)
    {
        var context = request.HttpContext;
        var limit = _options.MaxRequestBodyBytes;
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            // Kestrel enforces it too, so a chunked body cannot slip past the limit.
            sizeFeature.MaxRequestBodySize = limit;
        }

        var reader = context.Request.BodyReader;
        var expected = context.Request.ContentLength is { } length and > 0 ? (int)length : 4096;
        var buffer = ArrayPool<byte>.Shared.Rent(expected);
        var written = 0;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(context.RequestAborted).ConfigureAwait(false);
                var data = result.Buffer;
                if (written + data.Length > limit)
                {
                    reader.AdvanceTo(data.End);
                    ArrayPool<byte>.Shared.Return(buffer);
                    return false;
                }

                if (written + data.Length > buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit, Math.Max(buffer.Length * 2L, written + data.Length)));
                    buffer.AsSpan(0, written).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                data.CopyTo(buffer.AsSpan(written));
                written += (int)data.Length;
                reader.AdvanceTo(data.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        request.SetBody(buffer, written);
        return true;
    }

    private static bool IsJson(string contentType)
    {
        var mediaType = contentType.AsSpan();
        var semicolon = mediaType.IndexOf(';');
        if (semicolon >= 0)
        {
            mediaType = mediaType[..semicolon];
        }

        mediaType = mediaType.Trim();
        return mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || (mediaType.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
    }
}
