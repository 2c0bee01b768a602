using ModelGateway.Configuration;
using ModelGateway.Providers.Media;

namespace ModelGateway.Tests.Providers;

/// <summary>
/// Stands in for an admin's allowed media fetching (another area's subject, tested there): hands out fixed
/// bytes for any URL and remembers which it was asked for.
/// </summary>
internal sealed class CannedMediaFetcher(string mediaType, byte[] bytes) : IMediaFetcher
{
    public List<string> Fetched { get; } = [];

    public ValueTask<FetchedMedia> FetchAsync(string url, MediaKind kind, Deployment deployment, CancellationToken cancellationToken)
    {
        lock (Fetched)
        {
            Fetched.Add(url);
        }

        return ValueTask.FromResult(new FetchedMedia(mediaType, bytes));
    }
}
