using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelGateway.Tests.Providers;

/// <summary>
/// Google's OAuth 2 token endpoint on loopback, as a service account meets it: a JWT-bearer grant whose
/// RS256 assertion is checked against the public half of a key this server issued, answered with an
/// access token. It counts what it issues, so tests can prove the gateway caches tokens.
/// </summary>
internal sealed class GoogleTokenServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, RSA> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _issued = new(StringComparer.Ordinal);
    private int _refused;

    private GoogleTokenServer(WebApplication app) => _app = app;

    /// <summary>The token endpoint (<c>token_uri</c> of the keys this server makes).</summary>
    public string TokenUri { get; private set; } = string.Empty;

    /// <summary>What every issued token is, unless a test asks for numbered ones.</summary>
    public string AccessToken { get; init; } = "ya29.a0-vertex-test-token-6d1f0c";

    /// <summary>When false, each token carries a sequence number, so a refresh is visible.</summary>
    public bool SameTokenEachTime { get; init; } = true;

    /// <summary>Lifetime of issued tokens (<c>expires_in</c>).</summary>
    public TimeSpan Lifetime { get; init; } = TimeSpan.FromHours(1);

    public int Refused => Volatile.Read(ref _refused);

    /// <summary>Tokens issued to a service account.</summary>
    public int IssuedTo(string clientEmail) => _issued.TryGetValue(clientEmail, out var count) ? count : 0;

    public static async Task<GoogleTokenServer> StartAsync(TimeSpan? lifetime = null, bool sameTokenEachTime = true)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new GoogleTokenServer(app) { Lifetime = lifetime ?? TimeSpan.FromHours(1), SameTokenEachTime = sameTokenEachTime };
        app.MapPost("/token", server.IssueAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.TokenUri = address.TrimEnd('/') + "/token";
        return server;
    }

    /// <summary>A new service account whose key this server trusts: the key file's JSON, as Google issues it.</summary>
    public string CreateServiceAccountKey(string clientEmail, bool trusted = true)
    {
        var rsa = RSA.Create(2048);
        if (trusted)
        {
            _keys[clientEmail] = rsa;
        }

        return JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["type"] = "service_account",
            ["project_id"] = "test-project",
            ["private_key_id"] = Convert.ToHexString(RandomNumberGenerator.GetBytes(20)).ToLowerInvariant(),
            ["private_key"] = rsa.ExportPkcs8PrivateKeyPem() + "\n",
            ["client_email"] = clientEmail,
            ["client_id"] = "104857600000000000001",
            ["auth_uri"] = "https://accounts.google.com/o/oauth2/auth",
            ["token_uri"] = TokenUri,
        });
    }

    private async Task IssueAsync(HttpContext context)
    {
        var form = await context.Request.ReadFormAsync();
        var assertion = form["assertion"].ToString();
        if (form["grant_type"] != "urn:ietf:params:oauth:grant-type:jwt-bearer" || !TryVerify(assertion, out var email))
        {
            Interlocked.Increment(ref _refused);
            context.Response.StatusCode = 400;
            await context.Response.WriteAsJsonAsync(new Dictionary<string, string> { ["error"] = "invalid_grant", ["error_description"] = "Invalid JWT Signature." });
            return;
        }

        var count = _issued.AddOrUpdate(email, 1, static (_, n) => n + 1);
        await context.Response.WriteAsJsonAsync(new Dictionary<string, object>
        {
            ["access_token"] = SameTokenEachTime ? AccessToken : $"{AccessToken}-{count}",
            ["expires_in"] = (int)Lifetime.TotalSeconds,
            ["token_type"] = "Bearer",
        });
    }

    // header.payload.signature, RS256 over "header.payload" with the key of the account named in "iss"; the
    // audience is Google's token endpoint (the client names it whatever token_uri it posts to) and the scope
    // is Google Cloud's.
    private bool TryVerify(string assertion, out string email)
    {
        email = string.Empty;
        var parts = assertion.Split('.');
        if (parts.Length != 3)
        {
            return false;
        }

        using var payload = JsonDocument.Parse(Base64Url(parts[1]));
        var claims = payload.RootElement;
        email = claims.GetProperty("iss").GetString() ?? string.Empty;
        if (!_keys.TryGetValue(email, out var key)
            || claims.GetProperty("aud").GetString() != "https://oauth2.googleapis.com/token"
            || claims.GetProperty("scope").GetString() != "https://www.googleapis.com/auth/cloud-platform")
        {
            return false;
        }

        return key.VerifyData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), Base64Url(parts[2]), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
    }

    private static byte[] Base64Url(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(padded.PadRight(padded.Length + ((4 - (padded.Length % 4)) % 4), '='));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        foreach (var key in _keys.Values)
        {
            key.Dispose();
        }
    }
}
