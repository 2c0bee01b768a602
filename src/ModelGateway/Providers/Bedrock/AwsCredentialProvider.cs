using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;
using Amazon.Runtime.Credentials;

namespace ModelGateway.Providers.Bedrock;

/// <summary>
/// The AWS credentials a Bedrock provider signs with, from AWSSDK.Core: the key pair the file gave, a
/// named profile, or the SDK's default chain (environment, shared profile, web identity/IRSA, container
/// and instance roles). Nothing is resolved until the first request, so loading a routing file never
/// reaches out to a metadata service. Temporary credentials are cached and refreshed by the SDK before
/// they expire; they are fetched per attempt from that cache, never per request from their source.
/// </summary>
internal sealed class AwsCredentialProvider
{
    private readonly BedrockSettings _settings;
    private readonly ImmutableCredentials? _keys;
    private AWSCredentials? _resolved;

    public AwsCredentialProvider(BedrockSettings settings)
    {
        _settings = settings;
        if (settings.Source == AwsCredentialSource.Keys)
        {
            _keys = new ImmutableCredentials(settings.AccessKeyId!.Value, settings.SecretAccessKey!.Value, settings.SessionToken?.Value);
        }
    }

    /// <summary>Credentials for one attempt.</summary>
    /// <exception cref="AwsCredentialException">None could be found or refreshed; the message names the source, never a secret.</exception>
    public async ValueTask<ImmutableCredentials> GetAsync(CancellationToken cancellationToken)
    {
        if (_keys is not null)
        {
            return _keys;
        }

        try
        {
            var source = _resolved ??= await ResolveAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            var credentials = await source.GetCredentialsAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            return credentials ?? throw new AwsCredentialException($"The {Describe()} gave no AWS credentials.");
        }
        catch (Exception ex) when (ex is AmazonClientException or AmazonServiceException or InvalidOperationException or IOException or HttpRequestException)
        {
            // The SDK's messages name the sources it tried and why they failed; they carry no key material.
            throw new AwsCredentialException($"No AWS credentials from the {Describe()}: {ex.Message}", ex);
        }
    }

    private Task<AWSCredentials> ResolveAsync()
    {
        if (_settings.Source == AwsCredentialSource.Profile)
        {
            return new CredentialProfileStoreChain().TryGetAWSCredentials(_settings.Profile, out var profile)
                ? Task.FromResult(profile)
                : throw new AwsCredentialException($"The AWS profile '{_settings.Profile}' was not found in the shared config or credentials file.");
        }

        return DefaultAWSCredentialsIdentityResolver.GetCredentialsAsync(null);
    }

    private string Describe() => _settings.Source == AwsCredentialSource.Profile ? $"AWS profile '{_settings.Profile}'" : "AWS default credential chain";
}

/// <summary>No usable AWS credentials: a misconfiguration of the gateway, not the client's fault.</summary>
internal sealed class AwsCredentialException(string message, Exception? inner = null) : Exception(message, inner);
