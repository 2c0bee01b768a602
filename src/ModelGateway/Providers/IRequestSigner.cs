using ModelGateway.Forwarding;

namespace ModelGateway.Providers;

/// <summary>
/// Adds per-attempt credentials to an upstream request once its headers are final: an AWS SigV4
/// signature over the exact body, a fresh OAuth access token. Providers with a fixed key need none.
/// </summary>
internal interface IRequestSigner
{
    ValueTask SignAsync(HttpRequestMessage request, SplicedBody body, CancellationToken cancellationToken);
}
