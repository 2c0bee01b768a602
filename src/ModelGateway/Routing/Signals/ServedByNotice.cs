using System.Buffers;
using System.Text;
using ModelGateway.Forwarding;
using ModelGateway.Resilience;
using ModelGateway.Wire;

namespace ModelGateway.Routing.Signals;

/// <summary>
/// Makes every response name what served it, even when its headers had to leave before the serving
/// deployment was known (a keep-alive for a slow first token), and makes errors name what failed.
/// </summary>
internal static class ServedByNotice
{
    /// <summary>Names the deployments whose attempts failed, comma-separated, on error responses.</summary>
    public const string FailedDeploymentsHeader = "x-modelgateway-failed-deployments";

    /// <summary>Prefix of the SSE comment that names the serving deployment when headers already left.</summary>
    public const string CommentPrefix = ": modelgateway-deployment=";

    private static readonly byte[] CommentPrefixBytes = Encoding.UTF8.GetBytes(CommentPrefix);

    /// <summary>
    /// Writes one keep-alive comment. The first one commits the headers, so the route is named in them
    /// now: once they are gone nothing but the stream itself can carry a name.
    /// </summary>
    public static void WriteKeepAlive(HttpResponse response, string route)
    {
        if (!response.HasStarted)
        {
            response.Headers["x-modelgateway-route"] = route;
        }

        ResponseRelay.StartEventStream(response);
        response.BodyWriter.Write(": keep-alive\n\n"u8);
    }

    /// <summary>
    /// Names the serving deployment at the start of the stream content when the headers went out before it
    /// was known. An SSE comment: every SSE client skips it, people and log scrapers can read it.
    /// </summary>
    public static void WriteDeploymentComment(HttpResponse response, string deployment)
    {
        var writer = response.BodyWriter;
        writer.Write(CommentPrefixBytes);
        // Deployment names are config identifiers, but a newline must never end the comment early.
        var span = writer.GetSpan(Encoding.UTF8.GetMaxByteCount(deployment.Length) + 2);
        var written = Encoding.UTF8.GetBytes(deployment.AsSpan(), span);
        for (var i = 0; i < written; i++)
        {
            if (span[i] is (byte)'\n' or (byte)'\r')
            {
                span[i] = (byte)'_';
            }
        }

        span[written] = (byte)'\n';
        span[written + 1] = (byte)'\n';
        writer.Advance(written + 2);
    }

    /// <summary>
    /// The deployments whose attempts failed, in attempt order without repeats; null when none did.
    /// Names only: never a URL or a key.
    /// </summary>
    public static string? FailedDeployments(AttemptLog attempts)
    {
        if (attempts.Count == 0)
        {
            return null;
        }

        List<string>? names = null;
        foreach (var record in attempts.ToArray())
        {
            if (record.Failure == AttemptFailure.None && !record.MidStream)
            {
                continue;
            }

            names ??= new List<string>(2);
            if (!names.Contains(record.Deployment, StringComparer.Ordinal))
            {
                names.Add(record.Deployment);
            }
        }

        return names is null ? null : string.Join(',', names);
    }

    /// <summary>
    /// The error as the client gets it: its message names the failed deployments when it does not already,
    /// and the header names them for clients that read headers rather than text.
    /// </summary>
    public static ApiError NameFailures(HttpResponse response, AttemptLog attempts, ApiError error)
    {
        if (FailedDeployments(attempts) is not { } failed)
        {
            return error;
        }

        if (!response.HasStarted)
        {
            response.Headers[FailedDeploymentsHeader] = failed;
        }

        // The all-attempts-failed message already lists "name: what happened" for each one.
        var first = failed.Split(',')[0];
        return error.Message.Contains(first + ": ", StringComparison.Ordinal)
            ? error
            : error with { Message = error.Message + " Failed deployments: " + failed.Replace(",", ", ", StringComparison.Ordinal) + "." };
    }
}
