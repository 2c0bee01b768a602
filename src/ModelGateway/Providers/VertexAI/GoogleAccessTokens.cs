using System.Net.Http.Headers;
using System.Text.Json;
using Google.Apis.Auth.OAuth2;
using ModelGateway.Forwarding;

namespace ModelGateway.Providers.VertexAI;

/// <summary>A Google credential could not give an access token; the message names why, never a secret.</summary>
internal sealed class GoogleCredentialException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// OAuth 2 access tokens for Google Cloud through <c>Google.Apis.Auth</c>: from a service-account key, or from
/// Application Default Credentials (GKE workload identity, the metadata server, <c>GOOGLE_APPLICATION_CREDENTIALS</c>).
/// The library caches the token and refreshes it before it expires, so a request normally costs no network
/// call; one instance serves every request (and survives reloads) for the same credential.
/// </summary>
internal sealed class GoogleAccessTokens
{
    /// <summary>The scope Vertex AI's prediction endpoints accept.</summary>
    public const string CloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform";

    private readonly Func<CancellationToken, Task<ITokenAccess>> _create;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ITokenAccess? _access;

    private GoogleAccessTokens(Func<CancellationToken, Task<ITokenAccess>> create) => _create = create;

    /// <summary>Tokens for a service account, signed with its key and exchanged at its <c>token_uri</c>.</summary>
    public static GoogleAccessTokens ForServiceAccount(ServiceAccountKey key, TimeProvider timeProvider)
    {
        var credential = key.CreateCredential(timeProvider);
        return new GoogleAccessTokens(_ => Task.FromResult<ITokenAccess>(credential));
    }

    /// <summary>
    /// Tokens from Application Default Credentials, looked up on first use: a start-up without them (a laptop,
    /// a test) is not an error until a request needs one.
    /// </summary>
    public static GoogleAccessTokens ForApplicationDefault() => new(static async cancellationToken =>
        (await GoogleCredential.GetApplicationDefaultAsync(cancellationToken).ConfigureAwait(false)).CreateScoped(CloudPlatformScope));

    /// <summary>The current access token: cached, refreshed by the library shortly before it expires.</summary>
    /// <exception cref="GoogleCredentialException">No token could be had.</exception>
    public async ValueTask<string> GetAsync(CancellationToken cancellationToken)
    {
        try
        {
            var access = _access ?? await CreateAsync(cancellationToken).ConfigureAwait(false);
            return await access.GetAccessTokenForRequestAsync(authUri: null, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not GoogleCredentialException && !cancellationToken.IsCancellationRequested)
        {
            // TokenResponseException carries Google's error and description ("invalid_grant"...), never the key or a token.
            throw new GoogleCredentialException($"no Google access token: {ex.GetType().Name}: {ex.Message}", ex);
        }
    }

    private async Task<ITokenAccess> CreateAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // A failure is not kept: ADC may appear later (a mounted key, the metadata server coming up).
            return _access ??= await _create(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }
}

/// <summary>Signs each Vertex AI attempt with the current access token as <c>Authorization: Bearer</c>.</summary>
internal sealed class GoogleTokenSigner(GoogleAccessTokens tokens) : IRequestSigner
{
    public async ValueTask SignAsync(HttpRequestMessage request, SplicedBody body, CancellationToken cancellationToken)
        => request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await tokens.GetAsync(cancellationToken).ConfigureAwait(false));
}

/// <summary>The fields of a service-account key file (<c>"type": "service_account"</c>) that getting a token needs.</summary>
internal sealed record ServiceAccountKey(string ClientEmail, string PrivateKey, string? PrivateKeyId, string TokenUri)
{
    /// <summary>Where Google exchanges a signed assertion for a token when the key names no <c>token_uri</c>.</summary>
    public const string DefaultTokenUri = "https://oauth2.googleapis.com/token";

    /// <summary>Reads and checks a key file's JSON; the problem, if any, never quotes the key.</summary>
    public static ServiceAccountKey? Parse(string json, out string? problem)
    {
        problem = null;
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            string? Field(string name) => root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
            if (Field("type") != "service_account")
            {
                problem = "not a service-account key (\"type\": \"service_account\"); other credentials go through Application Default Credentials: leave credentialsFile out and set GOOGLE_APPLICATION_CREDENTIALS";
                return null;
            }

            var email = Field("client_email");
            var privateKey = Field("private_key");
            if (string.IsNullOrEmpty(email) || string.IsNullOrEmpty(privateKey))
            {
                problem = "the service-account key has no client_email or private_key";
                return null;
            }

            var tokenUri = Field("token_uri") ?? DefaultTokenUri;
            if (!Uri.TryCreate(tokenUri, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
            {
                problem = "the service-account key's token_uri is not an absolute http(s) URL";
                return null;
            }

            var key = new ServiceAccountKey(email, privateKey, Field("private_key_id"), tokenUri);

            // Reading the private key now turns a damaged key into a configuration error instead of a failed request.
            _ = new ServiceAccountCredential.Initializer(email, tokenUri).FromPrivateKey(privateKey);
            return key;
        }
        catch (JsonException)
        {
            problem = "not valid JSON (expected a service-account key file)";
            return null;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The key reader throws whatever its ASN.1 decoder meets (FormatException, NotSupportedException...).
            problem = "the service-account key's private_key is not a PEM-encoded PKCS#8 RSA key";
            return null;
        }
    }

    public ServiceAccountCredential CreateCredential(TimeProvider timeProvider) => new(new ServiceAccountCredential.Initializer(ClientEmail, TokenUri)
    {
        Scopes = [GoogleAccessTokens.CloudPlatformScope],
        KeyId = PrivateKeyId,
        Clock = new TimeProviderClock(timeProvider),
    }.FromPrivateKey(PrivateKey));

    // The private key is a secret: a record's generated ToString would print it.
    public override string ToString() => $"service account {ClientEmail}";
}

/// <summary>The gateway's <see cref="TimeProvider"/> as the clock <c>Google.Apis</c> judges token expiry by.</summary>
internal sealed class TimeProviderClock(TimeProvider timeProvider) : Google.Apis.Util.IClock
{
    public DateTime Now => timeProvider.GetLocalNow().DateTime;

    public DateTime UtcNow => timeProvider.GetUtcNow().UtcDateTime;
}
