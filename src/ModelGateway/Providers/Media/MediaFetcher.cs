using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using ModelGateway.Configuration;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Media;

/// <summary>
/// Downloads a client's URL for a deployment whose <c>mediaFetch</c> allows it, and refuses everything
/// else without opening a connection. Safe by construction rather than by a check before the fetch:
/// <list type="bullet">
/// <item>the URL must be https, on an allowed port and host, without credentials;</item>
/// <item>the host is resolved inside <see cref="SocketsHttpHandler.ConnectCallback"/>, and every address it
/// resolves to is checked against <see cref="SpecialAddresses"/> right before the socket dials it, so no
/// second lookup (DNS rebinding) can change the address between the check and the connect;</item>
/// <item>no proxy (it would make the proxy the address dialled), no cookies, no credentials, no trace
/// headers; connections are never pooled, so each fetch dials and is checked anew;</item>
/// <item>redirects are followed only as far as the policy allows, each hop checked the same way;</item>
/// <item>a size, a time and a content-type limit, and the bytes are never logged.</item>
/// </list>
/// </summary>
internal sealed partial class MediaFetcher : IMediaFetcher, IDisposable
{
    private static readonly HttpRequestOptionsKey<MediaFetchPolicy> PolicyKey = new("modelgateway.media-fetch-policy");
    private static readonly ProductInfoHeaderValue UserAgent = new("ModelGateway-MediaFetch", "1.0");

    private readonly HttpMessageInvoker _client;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<MediaFetcher> _logger;
    private readonly Func<string, CancellationToken, ValueTask<IPAddress[]>>? _resolveForTests;

    public MediaFetcher(TimeProvider timeProvider, ILogger<MediaFetcher> logger, MediaFetchTestHooks? testHooks = null)
    {
        _timeProvider = timeProvider;
        _logger = logger;
        _resolveForTests = testHooks?.ResolveHostForTestsOnly;
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = false,
            PreAuthenticate = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectCallback = ConnectAsync,

            // A pooled connection would skip the address check of the next fetch; fetches are rare.
            PooledConnectionLifetime = TimeSpan.Zero,
            MaxResponseHeadersLength = 64,
            ResponseDrainTimeout = TimeSpan.Zero,

            // The client's trace context is nobody else's business.
            ActivityHeadersPropagator = null,
        };
        if (testHooks?.TrustServerCertificateForTestsOnly is { } trust)
        {
            handler.SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = trust };
        }

        _client = new HttpMessageInvoker(handler, disposeHandler: true);
    }

    public async ValueTask<FetchedMedia> FetchAsync(string url, MediaKind kind, Deployment deployment, CancellationToken cancellationToken)
    {
        if (DataUrl.TryParse(url, out var inlineType, out var base64))
        {
            // Already inline: nothing to fetch, whatever the deployment allows.
            return Inline(inlineType, base64, kind);
        }

        if (deployment.MediaFetch is not { } policy)
        {
            throw MediaFetchException.Off(kind);
        }

        string? host = null;
        try
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
            {
                throw Refused($"The {MediaFetchException.Noun(kind)} URL is not an absolute URL.", "not a URL");
            }

            host = HostOf(uri);
            using var deadline = new CancellationTokenSource(policy.Timeout, _timeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, cancellationToken);
            try
            {
                var media = await DownloadAsync(uri, kind, policy, linked.Token).ConfigureAwait(false);
                LogFetched(_logger, deployment.Name, host, media.MediaType, media.Bytes.Length);
                return media;
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw Refused($"The {MediaFetchException.Noun(kind)} URL did not finish downloading within {Durations.Format(policy.Timeout)}.", "timeout");
            }
            catch (HttpRequestException ex) when (Find<AddressRefusedException>(ex) is { } refused)
            {
                throw Refused(refused.Message, "address refused: " + refused.Range);
            }
            catch (HttpRequestException ex)
            {
                throw Refused($"The {MediaFetchException.Noun(kind)} URL could not be downloaded ({Describe(ex.HttpRequestError)}).", "download failed: " + ex.HttpRequestError);
            }
            catch (IOException)
            {
                throw Refused($"The download of the {MediaFetchException.Noun(kind)} URL broke off.", "download broke off");
            }
        }
        catch (MediaFetchException ex)
        {
            LogRefused(_logger, deployment.Name, host ?? "(none)", ex.Reason);
            throw;
        }
    }

    public void Dispose() => _client.Dispose();

    private async ValueTask<FetchedMedia> DownloadAsync(Uri uri, MediaKind kind, MediaFetchPolicy policy, CancellationToken cancellationToken)
    {
        var noun = MediaFetchException.Noun(kind);
        for (var hop = 0; ; hop++)
        {
            Check(uri, noun, policy);
            using var request = new HttpRequestMessage(HttpMethod.Get, uri) { Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
            request.Headers.UserAgent.Add(UserAgent);
            request.Headers.Accept.ParseAdd(kind == MediaKind.Image ? "image/*" : "*/*");
            request.Options.Set(PolicyKey, policy);
            using var response = await _client.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is >= 300 and < 400 && response.Headers.Location is { } location)
            {
                if (hop >= policy.MaxRedirects)
                {
                    throw Refused(
                        policy.MaxRedirects == 0
                            ? $"The {noun} URL redirects elsewhere, and the gateway follows no redirects for this deployment: send the final URL or the {noun} inline."
                            : $"The {noun} URL redirects more than {policy.MaxRedirects} times.",
                        "redirect");
                }

                uri = new Uri(uri, location);
                continue;
            }

            if (status is < 200 or > 299)
            {
                throw Refused($"The {noun} URL answered HTTP {status}.", "status " + status);
            }

            var content = response.Content;
            var declared = content.Headers.ContentType?.MediaType;
            if (!MediaTypes.IsAcceptable(declared, kind))
            {
                throw Refused(
                    kind == MediaKind.Image
                        ? $"The image URL returned '{declared ?? "no content type"}', not an image ({MediaTypes.ImageList})."
                        : $"The document URL returned '{declared ?? "no content type"}', not a document type the deployment takes.",
                    "content type");
            }

            if (content.Headers.ContentLength is { } length && length > policy.MaxBytes)
            {
                throw TooLarge(noun, policy);
            }

            var bytes = await ReadLimitedAsync(content, noun, policy, cancellationToken).ConfigureAwait(false);
            if (kind == MediaKind.Image)
            {
                var actual = MediaTypes.SniffImage(bytes) ?? throw Refused($"The image URL did not return a {MediaTypes.ImageList} image.", "not an image");
                return new FetchedMedia(actual, bytes);
            }

            return MediaTypes.DocumentMatches(declared!, bytes)
                ? new FetchedMedia(declared!.ToLowerInvariant(), bytes)
                : throw Refused($"The document URL's content is not the '{declared}' it claims to be.", "content mismatch");
        }
    }

    /// <summary>What can be known from the URL alone. The address is checked again where it is dialled.</summary>
    private static void Check(Uri uri, string noun, MediaFetchPolicy policy)
    {
        if (uri.Scheme != Uri.UriSchemeHttps)
        {
            throw Refused($"The gateway fetches only https {noun} URLs, not {uri.Scheme}:. Send the {noun} inline (base64 or a data: URL).", "scheme " + uri.Scheme);
        }

        if (uri.UserInfo.Length > 0)
        {
            throw Refused($"The {noun} URL carries credentials, which the gateway does not send.", "credentials in URL");
        }

        if (!policy.AllowsPort(uri.Port))
        {
            throw Refused($"The gateway does not fetch {noun} URLs on port {uri.Port} for this deployment.", "port " + uri.Port);
        }

        var host = HostOf(uri);
        if (!policy.AllowsHost(host))
        {
            throw Refused($"The gateway does not fetch {noun} URLs from '{host}' for this deployment.", "host not allowed");
        }

        if (IPAddress.TryParse(host, out var literal) && policy.Refuses(literal) is { } range)
        {
            // The client wrote the address: naming its range tells them nothing they did not send.
            throw Refused($"The gateway does not fetch {noun} URLs from {range} addresses.", "address refused: " + range);
        }
    }

    private static async Task<byte[]> ReadLimitedAsync(HttpContent content, string noun, MediaFetchPolicy policy, CancellationToken cancellationToken)
    {
        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var initial = (int)Math.Min(content.Headers.ContentLength ?? 64 * 1024, policy.MaxBytes + 1);
            var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(initial, 4096));
            var length = 0;
            try
            {
                while (true)
                {
                    if (length == buffer.Length)
                    {
                        var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, policy.MaxBytes + 1));
                        buffer.AsSpan(0, length).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    var read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                    if (read == 0)
                    {
                        return buffer.AsSpan(0, length).ToArray();
                    }

                    length += read;
                    if (length > policy.MaxBytes)
                    {
                        throw TooLarge(noun, policy);
                    }
                }
            }
            finally
            {
                // Cleared: client content must not linger in a shared pool.
                ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
            }
        }
    }

    // Runs for every connection the handler opens: resolve, check every address, then dial a checked one.
    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        if (!context.InitialRequestMessage.Options.TryGetValue(PolicyKey, out var policy))
        {
            throw new AddressRefusedException("The gateway opens no connection without a fetch policy.", "no policy");
        }

        var endpoint = context.DnsEndPoint;
        var host = endpoint.Host.StartsWith('[') ? endpoint.Host[1..^1] : endpoint.Host;
        IPAddress[] addresses;
        var isLiteral = IPAddress.TryParse(host, out var literal);
        if (isLiteral)
        {
            addresses = [literal!];
        }
        else
        {
            addresses = _resolveForTests is { } resolve
                ? await resolve(host, cancellationToken).ConfigureAwait(false)
                : await Dns.GetHostAddressesAsync(host, AddressFamily.Unspecified, cancellationToken).ConfigureAwait(false);
        }

        if (addresses.Length == 0)
        {
            throw new AddressRefusedException($"The host '{host}' has no address.", "no address");
        }

        // Every address must pass, not just the first: the socket below may fall back to any of them.
        foreach (var address in addresses)
        {
            if (policy.Refuses(address) is { } range)
            {
                throw new AddressRefusedException(
                    isLiteral
                        ? $"The gateway does not fetch URLs from {range} addresses."
                        : $"The host '{host}' resolves to an address the gateway does not fetch from (loopback, private, link-local or another special range).",
                    range);
            }
        }

        Exception? last = null;
        foreach (var address in addresses)
        {
            var dialled = SpecialAddresses.Normalize(address);
            var socket = new Socket(dialled.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(dialled, endpoint.Port), cancellationToken).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                last = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw last!;
    }

    private static FetchedMedia Inline(string mediaType, string base64, MediaKind kind)
    {
        try
        {
            var bytes = Convert.FromBase64String(base64);
            if (kind == MediaKind.Image)
            {
                mediaType = MediaTypes.SniffImage(bytes) ?? mediaType;
            }

            return new FetchedMedia(mediaType, bytes);
        }
        catch (FormatException)
        {
            throw Refused($"The {MediaFetchException.Noun(kind)} data: URL is not valid base64.", "bad data URL");
        }
    }

    /// <summary>The host as policies compare it: lower case, internationalized names as punycode, IPv6 without brackets.</summary>
    private static string HostOf(Uri uri)
    {
        var host = uri.IdnHost;
        if (host.StartsWith('['))
        {
            host = host[1..^1];
        }

        return host.ToLowerInvariant();
    }

    private static MediaFetchException Refused(string message, string reason) => new(message, MediaFetchException.InvalidUrl, reason);

    private static MediaFetchException TooLarge(string noun, MediaFetchPolicy policy)
        => Refused($"The {noun} URL returned more than {policy.MaxBytes} bytes, the deployment's limit.", "too large");

    private static string Describe(HttpRequestError error) => error switch
    {
        HttpRequestError.NameResolutionError => "the host name does not resolve",
        HttpRequestError.ConnectionError => "the connection failed",
        HttpRequestError.SecureConnectionError => "the TLS handshake failed",
        _ => "the server's answer could not be read",
    };

    private static T? Find<T>(Exception exception)
        where T : Exception
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (current is T found)
            {
                return found;
            }
        }

        return null;
    }

    /// <summary>Thrown inside the connect callback; the handler wraps it in an <see cref="HttpRequestException"/>.</summary>
    private sealed class AddressRefusedException(string message, string range) : Exception(message)
    {
        public string Range { get; } = range;
    }

    [LoggerMessage(EventId = 2901, Level = LogLevel.Information, Message = "Media fetch for deployment {Deployment} refused: {Reason} (host {Host})")]
    private static partial void LogRefused(ILogger logger, string deployment, string host, string reason);

    [LoggerMessage(EventId = 2902, Level = LogLevel.Debug, Message = "Media fetch for deployment {Deployment}: {MediaType}, {Length} bytes from {Host}")]
    private static partial void LogFetched(ILogger logger, string deployment, string host, string mediaType, int length);
}

/// <summary>
/// Overrides of <see cref="MediaFetcher"/> that exist for tests only: the gateway never registers this
/// type, and no configuration key reaches it. A test registers one to trust its own self-signed TLS
/// server and to answer host names without external DNS.
/// </summary>
internal sealed class MediaFetchTestHooks
{
    /// <summary>Replaces certificate validation. Tests only: production trusts the system's roots.</summary>
    public RemoteCertificateValidationCallback? TrustServerCertificateForTestsOnly { get; init; }

    /// <summary>Replaces DNS. The addresses it returns are checked exactly as DNS answers are.</summary>
    public Func<string, CancellationToken, ValueTask<IPAddress[]>>? ResolveHostForTestsOnly { get; init; }
}
