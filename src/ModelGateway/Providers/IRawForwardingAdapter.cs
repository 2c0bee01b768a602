using ModelGateway.Configuration;

namespace ModelGateway.Providers;

/// <summary>The capabilities of the OpenAI endpoints the gateway forwards as they are, for factories whose adapters can.</summary>
internal static class ForwardedCapabilities
{
    public const Capabilities All = Capabilities.Images | Capabilities.Audio | Capabilities.Moderations | Capabilities.Files | Capabilities.Batches;
}

/// <summary>
/// An adapter that can forward, as they are, the OpenAI endpoints the gateway does not interpret
/// (files, batches, images, audio, moderations, a stored response): it knows the provider's API root
/// and credential. OpenAI and OpenAI-compatible servers implement it; Azure OpenAI only for its v1
/// paths.
/// </summary>
internal interface IRawForwardingAdapter
{
    /// <summary>
    /// Sends <paramref name="message"/>, whose relative <see cref="HttpRequestMessage.RequestUri"/> names the
    /// path under the provider's OpenAI API root (<c>files/file-abc</c>), with the provider's credential.
    /// </summary>
    Task<HttpResponseMessage> ForwardAsync(HttpRequestMessage message, CancellationToken cancellationToken);
}
