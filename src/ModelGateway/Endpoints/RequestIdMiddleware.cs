namespace ModelGateway.Endpoints;

/// <summary>
/// Gives every request an id and puts it on every response as <c>x-request-id</c>: the client's own
/// id when it sent a sane one, else a new one. Logs and traces carry the same id.
/// </summary>
internal sealed class RequestIdMiddleware(RequestDelegate next)
{
    private const int MaxLength = 128;

    public Task InvokeAsync(HttpContext context)
    {
        var id = context.Request.Headers["x-request-id"].ToString();
        if (!IsValid(id))
        {
            id = NewId();
        }

        context.TraceIdentifier = id;
        context.Response.Headers["x-request-id"] = id;
        return next(context);
    }

    private static bool IsValid(string id)
    {
        if (id.Length is 0 or > MaxLength)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (c is < '!' or > '~')
            {
                return false;
            }
        }

        return true;
    }

    private static string NewId() => string.Create(36, Guid.NewGuid(), static (span, guid) =>
    {
        "req_".CopyTo(span);
        guid.TryFormat(span[4..], out _, "N");
    });
}
