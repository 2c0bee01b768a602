using ModelGateway.Configuration;

namespace ModelGateway.Providers.Media;

/// <summary>What a client URL should point at.</summary>
internal enum MediaKind
{
    Image,
    Document,
}

/// <summary>Bytes fetched for a client's URL, for a provider that takes only inline content.</summary>
internal sealed record FetchedMedia(string MediaType, byte[] Bytes);

/// <summary>A client URL the gateway will not (or could not) fetch; the message is for the client.</summary>
internal sealed class MediaFetchException(string message) : Exception(message);

/// <summary>
/// Fetches the URL a client put in a request (an image, a document) for a deployment whose provider
/// cannot take URLs (Bedrock, Gemini). Off by default: the gateway then never opens a connection for a
/// client and the request gets a clear 400 asking for inline content. docs/security.md says what an
/// admin can allow and what is always refused.
/// </summary>
internal interface IMediaFetcher
{
    /// <exception cref="MediaFetchException">Fetching is off for this deployment, or the URL was refused or failed.</exception>
    ValueTask<FetchedMedia> FetchAsync(string url, MediaKind kind, Deployment deployment, CancellationToken cancellationToken);
}

/// <summary>The default: nothing is fetched, ever.</summary>
internal sealed class NoMediaFetcher : IMediaFetcher
{
    public ValueTask<FetchedMedia> FetchAsync(string url, MediaKind kind, Deployment deployment, CancellationToken cancellationToken)
        => throw new MediaFetchException(
            $"The deployment serving this request needs the {(kind == MediaKind.Image ? "image" : "document")} inline (base64 or a data: URL); the gateway does not fetch URLs for it.");
}
