using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Providers.Media;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Gemini;

/// <summary>
/// Gets bytes for the client URLs a request carries, for providers that take inline content only (Gemini,
/// and everything on Vertex AI), through the gateway's <see cref="IMediaFetcher"/>: by default it fetches
/// nothing and the request gets a clear 400 asking for inline content.
/// </summary>
internal static class ClientMedia
{
    private static readonly Dictionary<string, FetchedMedia> None = [];

    /// <exception cref="MediaFetchException">A URL was refused or could not be fetched.</exception>
    public static async ValueTask<IReadOnlyDictionary<string, FetchedMedia>> FetchAsync(
        IEnumerable<(string Url, MediaKind Kind)> urls, IMediaFetcher fetcher, Deployment deployment, CancellationToken cancellationToken)
    {
        Dictionary<string, FetchedMedia>? fetched = null;
        foreach (var (url, kind) in urls)
        {
            fetched ??= new Dictionary<string, FetchedMedia>(StringComparer.Ordinal);
            if (!fetched.ContainsKey(url))
            {
                fetched[url] = await fetcher.FetchAsync(url, kind, deployment, cancellationToken).ConfigureAwait(false);
            }
        }

        return fetched ?? None;
    }

    /// <summary>A refused URL is the client's to fix (send the bytes inline): a 400, not retried on a deployment that cannot take it either.</summary>
    public static UpstreamResponse Refuse(MediaFetchException exception)
        => UpstreamResponse.Refused(new UpstreamError(
            UpstreamErrorKind.ClientError,
            ApiError.BadRequest(exception.Message, "invalid_image_url", "messages"),
            "client media not fetched: " + exception.Message));
}
