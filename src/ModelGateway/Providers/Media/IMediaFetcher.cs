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

/// <summary>
/// A client URL the gateway will not (or could not) fetch. The message is for the client (it never
/// names an address a host name resolved to); <see cref="Code"/> is the error code it is sent with,
/// and <see cref="Reason"/> a short word for logs and traces that never holds the URL.
/// </summary>
internal sealed class MediaFetchException(string message, string code = MediaFetchException.InvalidUrl, string reason = "refused") : Exception(message)
{
    /// <summary>The URL was refused or its download failed (OpenAI's own code for the case).</summary>
    public const string InvalidUrl = "invalid_image_url";

    /// <summary>The deployment needs the content inline and fetching is off for it.</summary>
    public const string NotInline = "image_url_not_supported";

    public string Code { get; } = code;

    public string Reason { get; } = reason;

    /// <summary>The refusal when fetching is off: the client must send the content inline.</summary>
    public static MediaFetchException Off(MediaKind kind) => new(
        $"The deployment serving this request needs the {Noun(kind)} inline (base64 or a data: URL): it cannot take {Noun(kind)} URLs, and the gateway does not fetch URLs for it.",
        NotInline,
        "fetching off");

    public static string Noun(MediaKind kind) => kind == MediaKind.Image ? "image" : "document";
}

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

/// <summary>Nothing is fetched, ever: what <see cref="MediaFetcher"/> does for a deployment without <c>mediaFetch</c>.</summary>
internal sealed class NoMediaFetcher : IMediaFetcher
{
    public ValueTask<FetchedMedia> FetchAsync(string url, MediaKind kind, Deployment deployment, CancellationToken cancellationToken)
        => throw MediaFetchException.Off(kind);
}
