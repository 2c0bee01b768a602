using ModelGateway.Configuration;

namespace ModelGateway.Providers.Bedrock;

/// <summary>
/// <c>kind: bedrock</c>: AWS Bedrock Runtime's Converse API in one region, SigV4-signed with credentials from
/// the file (secrets), a shared-config profile, or the SDK's default chain (environment, profile, web
/// identity/IRSA, container and instance roles).
/// </summary>
internal sealed class BedrockFactory(ProviderServices services) : ProviderAdapterFactory(services)
{
    // Never reached: an entry without a valid region is refused with its own error, and no adapter is built.
    private static readonly Uri NoRegion = new("https://bedrock-runtime.invalid");

    public override string Kind => ProviderKinds.Bedrock;

    // The OpenTelemetry GenAI name of the system.
    public override string SemanticName => "aws.bedrock";

    public override DeploymentTier DefaultTier => DeploymentTier.Paas;

    // Converse is chat only: embeddings and legacy completions get a clear 400 on a Bedrock route.
    public override Capabilities Supports => Capabilities.Chat | Capabilities.Tools | Capabilities.Vision | Capabilities.JsonSchema | Capabilities.Prefill;

    // Converse gives every model one shape for tools and images; a model without them refuses with a 400.
    // Prefill (continuing an assistant turn) is Claude's; deployments of Claude declare it.
    public override Capabilities DefaultCapabilities => Capabilities.Chat | Capabilities.Tools | Capabilities.Vision | Capabilities.JsonSchema;

    // Converse takes image and document bytes (or S3 locations), never a client's URL.
    public override bool TakesMediaUrls => false;

    public override Uri? DefaultBaseUrlFor(ProviderDocument document)
        => BedrockSettings.IsValidRegion(document.Region) ? BedrockSettings.RegionalEndpoint(document.Region!) : NoRegion;

    protected override bool TakesAwsCredentials => true;

    protected override object? Compile(ProviderDocument document, string path, ConfigContext context)
    {
        if (document.ApiKey is not null)
        {
            context.Error(path + ".apiKey", "not used by bedrock providers: give accessKeyId and secretAccessKey, a profile, or neither for the default AWS credential chain");
        }

        var region = document.Region;
        if (region is null)
        {
            context.Error(path + ".region", "required for bedrock: the AWS region requests are signed for (e.g. us-east-1)");
        }
        else if (!BedrockSettings.IsValidRegion(region))
        {
            context.Error(path + ".region", $"'{region}' is not an AWS region (e.g. us-east-1, eu-central-1)");
        }

        var source = AwsCredentialSource.Chain;
        Secret? accessKeyId = null;
        Secret? secretAccessKey = null;
        Secret? sessionToken = null;
        if (document.AccessKeyId is not null || document.SecretAccessKey is not null || document.SessionToken is not null)
        {
            source = AwsCredentialSource.Keys;
            if (document.AccessKeyId is null || document.SecretAccessKey is null)
            {
                context.Error(path + (document.AccessKeyId is null ? ".accessKeyId" : ".secretAccessKey"), "accessKeyId and secretAccessKey go together (env:NAME or file:/path)");
            }

            if (document.Profile is not null)
            {
                context.Error(path + ".profile", "give either a profile or accessKeyId/secretAccessKey, not both");
            }

            // An access key id is not secret, so a literal one is fine; the secret key and token should not be literals.
            accessKeyId = document.AccessKeyId is { } id && (id.StartsWith("env:", StringComparison.Ordinal) || id.StartsWith("file:", StringComparison.Ordinal))
                ? context.ResolveSecret(id, path + ".accessKeyId")
                : document.AccessKeyId is { } literal ? new Secret(literal) : null;
            secretAccessKey = context.ResolveSecret(document.SecretAccessKey, path + ".secretAccessKey");
            sessionToken = context.ResolveSecret(document.SessionToken, path + ".sessionToken");
        }
        else if (document.Profile is not null)
        {
            source = AwsCredentialSource.Profile;
            if (string.IsNullOrWhiteSpace(document.Profile))
            {
                context.Error(path + ".profile", "name a profile of the shared AWS config or credentials file");
            }
        }

        return new BedrockSettings(region ?? string.Empty, source, document.Profile, accessKeyId, secretAccessKey, sessionToken);
    }

    public override IProviderAdapter Create(ProviderEndpoint provider) => new BedrockAdapter(provider, Services);
}
