using System.Text.RegularExpressions;
using ModelGateway.Configuration;

namespace ModelGateway.Providers.Bedrock;

/// <summary>Where a Bedrock provider entry's AWS credentials come from.</summary>
internal enum AwsCredentialSource : byte
{
    /// <summary>The SDK's default chain: environment, shared profile, web identity (IRSA), container and instance roles.</summary>
    Chain,

    /// <summary>A named profile of the shared config and credentials files.</summary>
    Profile,

    /// <summary>An access key pair (and session token) given in the routing file, as secrets.</summary>
    Keys,
}

/// <summary>
/// A compiled <c>kind: bedrock</c> entry: the AWS region its requests are signed for, and where its
/// credentials come from. The keys are <see cref="Secret"/>s: their text never leaves the process.
/// </summary>
internal sealed partial record BedrockSettings(string Region, AwsCredentialSource Source, string? Profile, Secret? AccessKeyId, Secret? SecretAccessKey, Secret? SessionToken)
{
    /// <summary>SigV4's service name for Bedrock Runtime.</summary>
    public const string SigningService = "bedrock";

    /// <summary>Bedrock Runtime's regional endpoint, where the file gives no <c>baseUrl</c>.</summary>
    public static Uri RegionalEndpoint(string region)
        => new($"https://bedrock-runtime.{region}.{(region.StartsWith("cn-", StringComparison.Ordinal) ? "amazonaws.com.cn" : "amazonaws.com")}");

    /// <summary>An AWS region name (us-east-1, eu-central-2, us-gov-west-1): it becomes part of a host name.</summary>
    public static bool IsValidRegion(string? region) => region is { Length: <= 32 } && RegionPattern().IsMatch(region);

    [GeneratedRegex(@"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")]
    private static partial Regex RegionPattern();
}
