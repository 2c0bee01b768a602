using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ModelGateway.FakeUpstream.Internal.Bedrock;

/// <summary>Why a request's SigV4 signature was refused, as the AWS exception name and message.</summary>
internal sealed record SignatureFailure(string ExceptionType, string Message);

/// <summary>
/// Recomputes an AWS Signature Version 4 (<c>AWS4-HMAC-SHA256</c>, header form) over the request as received and
/// compares it with the one sent. The canonical URI encodes each already-encoded path segment once more, as every
/// AWS service but S3 expects, so model ids such as <c>us.anthropic.claude-...-v2%3A0</c> verify as the SDKs sign them.
/// </summary>
internal static class SigV4Verifier
{
    private const string Algorithm = "AWS4-HMAC-SHA256";
    private static readonly TimeSpan MaxSkew = TimeSpan.FromMinutes(15);

    public const string MismatchMessage =
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

    /// <summary>Null when the signature is valid for these credentials, region and service.</summary>
    public static SignatureFailure? Verify(
        HttpRequest request,
        string rawPath,
        byte[] body,
        AwsCredentials credentials,
        string region,
        string service,
        DateTimeOffset now)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.Length == 0)
        {
            return new SignatureFailure("MissingAuthenticationTokenException", "Missing Authentication Token");
        }

        if (!authorization.StartsWith(Algorithm + " ", StringComparison.Ordinal))
        {
            return new SignatureFailure("IncompleteSignatureException", $"Unsupported AWS 'algorithm': '{authorization.Split(' ')[0]}'");
        }

        string? credential = null, signedHeaders = null, signature = null;
        foreach (var part in authorization[(Algorithm.Length + 1)..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                continue;
            }

            var value = part[(equals + 1)..];
            switch (part[..equals])
            {
                case "Credential":
                    credential = value;
                    break;
                case "SignedHeaders":
                    signedHeaders = value;
                    break;
                case "Signature":
                    signature = value;
                    break;
            }
        }

        if (credential is null || signedHeaders is null || signature is null)
        {
            return new SignatureFailure("IncompleteSignatureException", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.");
        }

        // Credential=AKID/20260101/us-east-1/bedrock/aws4_request
        var scopeParts = credential.Split('/');
        if (scopeParts.Length != 5 || scopeParts[4] != "aws4_request")
        {
            return new SignatureFailure("IncompleteSignatureException", "Credential should be scoped to a valid region.");
        }

        if (!string.Equals(scopeParts[0], credentials.AccessKeyId, StringComparison.Ordinal))
        {
            return new SignatureFailure("UnrecognizedClientException", "The security token included in the request is invalid.");
        }

        if (scopeParts[2] != region)
        {
            return new SignatureFailure("InvalidSignatureException", $"Credential should be scoped to a valid region, not '{scopeParts[2]}'. ");
        }

        if (scopeParts[3] != service)
        {
            return new SignatureFailure("InvalidSignatureException", $"Credential should be scoped to correct service: '{service}'. ");
        }

        var amzDate = request.Headers["x-amz-date"].ToString();
        if (!DateTimeOffset.TryParseExact(amzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var signedAt)
            || !amzDate.StartsWith(scopeParts[1], StringComparison.Ordinal))
        {
            return new SignatureFailure("IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
        }

        if ((now - signedAt).Duration() > MaxSkew)
        {
            var format = "yyyyMMdd'T'HHmmss'Z'";
            return new SignatureFailure(
                "InvalidSignatureException",
                $"Signature expired: {amzDate} is now earlier than {(now - MaxSkew).UtcDateTime.ToString(format, CultureInfo.InvariantCulture)} ({now.UtcDateTime.ToString(format, CultureInfo.InvariantCulture)} - 15 min.)");
        }

        var payloadHash = request.Headers["x-amz-content-sha256"].ToString();
        if (payloadHash.Length == 0)
        {
            payloadHash = Convert.ToHexStringLower(SHA256.HashData(body));
        }

        var canonical = new StringBuilder();
        canonical.Append(request.Method).Append('\n');
        canonical.Append(CanonicalUri(rawPath)).Append('\n');
        canonical.Append(CanonicalQuery(request.QueryString.Value)).Append('\n');
        foreach (var name in signedHeaders.Split(';'))
        {
            canonical.Append(name).Append(':').Append(CanonicalHeaderValue(request, name)).Append('\n');
        }

        canonical.Append('\n').Append(signedHeaders).Append('\n').Append(payloadHash);

        var scope = $"{scopeParts[1]}/{region}/{service}/aws4_request";
        var stringToSign = $"{Algorithm}\n{amzDate}\n{scope}\n{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical.ToString())))}";
        var key = Hmac(Encoding.UTF8.GetBytes("AWS4" + credentials.SecretAccessKey), scopeParts[1]);
        key = Hmac(key, region);
        key = Hmac(key, service);
        key = Hmac(key, "aws4_request");
        var expected = Convert.ToHexStringLower(Hmac(key, stringToSign));
        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature.ToLowerInvariant()))
            ? null
            : new SignatureFailure("InvalidSignatureException", MismatchMessage);
    }

    /// <summary>Each segment of the path as sent, URI-encoded once more.</summary>
    public static string CanonicalUri(string rawPath)
    {
        if (rawPath.Length == 0)
        {
            return "/";
        }

        var segments = rawPath.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            segments[i] = UriEncode(segments[i]);
        }

        return string.Join('/', segments);
    }

    /// <summary>AWS's URI encoding: unreserved characters stay, every other byte becomes <c>%XX</c> in upper case.</summary>
    public static string UriEncode(string value)
    {
        var builder = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            if (b is (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z') or (>= (byte)'0' and <= (byte)'9') or (byte)'-' or (byte)'_' or (byte)'.' or (byte)'~')
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }

    private static string CanonicalQuery(string? query)
    {
        if (string.IsNullOrEmpty(query) || query == "?")
        {
            return string.Empty;
        }

        var pairs = new List<(string Key, string Value)>();
        foreach (var pair in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var name = Uri.UnescapeDataString(equals < 0 ? pair : pair[..equals]);
            var value = equals < 0 ? string.Empty : Uri.UnescapeDataString(pair[(equals + 1)..]);
            pairs.Add((UriEncode(name), UriEncode(value)));
        }

        pairs.Sort((a, b) => a.Key != b.Key ? string.CompareOrdinal(a.Key, b.Key) : string.CompareOrdinal(a.Value, b.Value));
        return string.Join('&', pairs.Select(p => p.Key + "=" + p.Value));
    }

    private static string CanonicalHeaderValue(HttpRequest request, string name)
    {
        var values = request.Headers[name];
        var joined = string.Join(',', values.Select(v => CollapseSpaces((v ?? string.Empty).Trim())));
        return joined;
    }

    private static string CollapseSpaces(string value)
    {
        if (!value.Contains("  ", StringComparison.Ordinal))
        {
            return value;
        }

        var builder = new StringBuilder(value.Length);
        var previousSpace = false;
        foreach (var c in value)
        {
            if (c == ' ' && previousSpace)
            {
                continue;
            }

            previousSpace = c == ' ';
            builder.Append(c);
        }

        return builder.ToString();
    }

    private static byte[] Hmac(byte[] key, string data) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(data));
}
