using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Caching;

/// <summary>
/// The cache stores an answer (and indexes its prompt) just after the answer has gone out, and the access
/// log line is written after that: a test that asks again, on any replica, waits for that line first.
/// </summary>
internal static class CacheTestRequests
{
    public static async Task<T> CompletedAsync<T>(GatewayHost host, Func<Task<T>> send)
    {
        var before = AccessLines(host);
        var result = await send();
        for (var i = 0; i < 500 && AccessLines(host) <= before; i++)
        {
            await Task.Delay(10);
        }

        return result;
    }

    private static int AccessLines(GatewayHost host)
        => host.Logs.Lines.Count(l => l.Contains(" route=", StringComparison.Ordinal) && l.Contains(" tokens=", StringComparison.Ordinal));
}
