using Amazon.Runtime;
using Amazon.Runtime.Endpoints;
using Amazon.Runtime.Internal;
using Amazon.Runtime.Internal.Auth;
using ModelGateway.Forwarding;

namespace ModelGateway.Providers.Bedrock;

/// <summary>
/// Signs one Bedrock attempt with AWS Signature Version 4 through AWSSDK.Core's <see cref="AWS4Signer"/>,
/// once every header is final. Only what the gateway controls is signed (host, content type, date, body
/// hash, session token): headers the HTTP handler adds later (trace context) cannot break the signature.
/// The secret key goes into the SDK's HMAC and nowhere else.
/// </summary>
internal sealed class BedrockRequestSigner(ImmutableCredentials credentials, string region, string basePath, string modelId, string operation, byte[] body, TimeProvider timeProvider)
    : IRequestSigner
{
    private static readonly AWS4Signer Signer = new();
    private static readonly SigningConfig Config = new();

    public ValueTask SignAsync(HttpRequestMessage request, SplicedBody splicedBody, CancellationToken cancellationToken)
    {
        var uri = request.RequestUri!;

        // A client's own x-amz-* or authorization header must not travel next to (or confuse) ours.
        foreach (var header in request.Headers.Select(h => h.Key).Where(IsAwsHeader).ToList())
        {
            request.Headers.Remove(header);
        }

        using var signed = new DefaultRequest(SignedOperation.Instance, "BedrockRuntime")
        {
            HttpMethod = "POST",
            Endpoint = new Uri(uri.GetLeftPart(UriPartial.Authority)),

            // The model id goes in unencoded, as the SDK's own Bedrock client passes it: the signer encodes the
            // path the way AWS's non-S3 services expect (each segment once more over the wire's encoding).
            ResourcePath = basePath + "/model/{modelId}/" + operation,
            Content = body,
            UseDoubleEncoding = true,
            AuthenticationRegion = region,
        };
        signed.PathResources["{modelId}"] = modelId;
        if (request.Content?.Headers.ContentType?.ToString() is { } contentType)
        {
            signed.Headers["Content-Type"] = contentType;
        }

        if (credentials.UseToken)
        {
            signed.Headers["X-Amz-Security-Token"] = credentials.Token;
        }

        var result = Signer.SignRequest(signed, Config, metrics: null, credentials.AccessKey, credentials.SecretKey, timeProvider.GetUtcNow().UtcDateTime);
        foreach (var (name, value) in signed.Headers)
        {
            if (IsAwsHeader(name))
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        }

        request.Headers.TryAddWithoutValidation("Authorization", result.ForAuthorizationHeader);
        return ValueTask.CompletedTask;
    }

    private static bool IsAwsHeader(string name)
        => name.StartsWith("x-amz-", StringComparison.OrdinalIgnoreCase) || name.Equals("authorization", StringComparison.OrdinalIgnoreCase);

    /// <summary>The operation the SDK's request type wraps; the signer reads nothing from it.</summary>
    private sealed class SignedOperation : AmazonWebServiceRequest
    {
        public static readonly SignedOperation Instance = new();
    }

    /// <summary>What <see cref="AWS4Signer"/> asks of a client configuration: the service name it signs for.</summary>
    private sealed class SigningConfig : ClientConfig
    {
        public SigningConfig()
            : base(null)
        {
            AuthenticationServiceName = BedrockSettings.SigningService;
        }

        public override string RegionEndpointServiceName => BedrockSettings.SigningService;

        public override string ServiceVersion => "2023-09-30";

        public override string UserAgent => "ModelGateway";

        public override Amazon.Runtime.Endpoints.Endpoint DetermineServiceOperationEndpoint(ServiceOperationEndpointParameters parameters)
            => throw new NotSupportedException("The gateway chooses the endpoint itself.");
    }
}
