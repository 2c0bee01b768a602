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

    // A request id needs uniqueness, not secrecy: a random per-process prefix (so replicas and
    // restarts do not collide) plus a counter. Guid.NewGuid would cost a getrandom syscall per request.
    private static readonly ulong ProcessPrefix = (ulong)Random.Shared.NextInt64();
    private static long s_counter;

    internal static string NewId() => string.Create(36, Interlocked.Increment(ref s_counter), static (span, sequence) =>
    {
        "req_".CopyTo(span);
        ProcessPrefix.TryFormat(span[4..], out _, "x16");
        ((ulong)sequence).TryFormat(span[20..], out _, "x16");
    });
}
