using System.Net;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Providers;

/// <summary>
/// Credentials a Bedrock provider entry does not spell out come from AWSSDK.Core's own sources: the default
/// chain (here its environment variables) or a named profile of the shared credentials file. The tests set
/// process-wide AWS variables, so they run alone; the instance metadata service is switched off so that no
/// test can ever reach out for a role.
/// </summary>
[Collection(AwsEnvironmentCollection.Name)]
public sealed class BedrockCredentialsTests(AwsEnvironmentFixture files) : IAsyncLifetime
{
    private const string EnvironmentKeyId = "ASIAGATEWAYTESTENV001";
    private const string EnvironmentSecret = "environmentSecret/Zq4Xw8Cv2Bn6Mm1Lk5Jh9Gf3";
    private const string SessionToken = "FwoGZXIvYXdzEXAMPLESESSIONTOKENfortheGatewayTests";
    private const string ProfileKeyId = "AKIAGATEWAYTESTPRF01";
    private const string ProfileSecret = "profileSecret/Rt6Yu1Io5Pa9Sd3Fg7Hj2Kl8";

    private static readonly string[] Variables =
    [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ];

    private readonly Dictionary<string, string?> _saved = [];

    public Task InitializeAsync()
    {
        foreach (var name in Variables)
        {
            _saved[name] = Environment.GetEnvironmentVariable(name);
            Environment.SetEnvironmentVariable(name, null);
        }

        File.WriteAllText(files.CredentialsFile, $"""
            [gateway-test]
            aws_access_key_id = {ProfileKeyId}
            aws_secret_access_key = {ProfileSecret}
            """);
        Environment.SetEnvironmentVariable("AWS_SHARED_CREDENTIALS_FILE", files.CredentialsFile);
        Environment.SetEnvironmentVariable("AWS_CONFIG_FILE", files.ConfigFile);
        Environment.SetEnvironmentVariable("AWS_EC2_METADATA_DISABLED", "true");
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        foreach (var (name, value) in _saved)
        {
            Environment.SetEnvironmentVariable(name, value);
        }

        return Task.CompletedTask;
    }

    [Fact]
    public async Task Without_credentials_in_the_file_the_default_chain_signs_with_the_environments_keys_and_session_token()
    {
        Environment.SetEnvironmentVariable("AWS_ACCESS_KEY_ID", EnvironmentKeyId);
        Environment.SetEnvironmentVariable("AWS_SECRET_ACCESS_KEY", EnvironmentSecret);
        Environment.SetEnvironmentVariable("AWS_SESSION_TOKEN", SessionToken);
        await using var upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { AwsCredentials = new AwsCredentials(EnvironmentKeyId, EnvironmentSecret), AwsRegion = "eu-west-3" });
        upstream.DefaultBehavior = new UpstreamBehavior { Content = "Signed by the chain." };
        await using var gateway = await GatewayHost.StartAsync(Config(upstream, "eu-west-3", string.Empty));

        using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"claude","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Signed by the chain.", await ContentAsync(response));
        var seen = Assert.Single(upstream.Requests);
        Assert.Equal(SessionToken, seen.Headers["x-amz-security-token"]);
        Assert.Contains("x-amz-security-token", seen.Headers["authorization"], StringComparison.Ordinal);
        Assert.DoesNotContain(EnvironmentSecret, gateway.Logs.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_named_profile_signs_with_that_profiles_keys()
    {
        await using var upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { AwsCredentials = new AwsCredentials(ProfileKeyId, ProfileSecret) });
        upstream.DefaultBehavior = new UpstreamBehavior { Content = "Signed by the profile." };
        await using var gateway = await GatewayHost.StartAsync(Config(upstream, "us-east-1", ", profile: gateway-test"));

        using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"claude","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Signed by the profile.", await ContentAsync(response));
    }

    [Fact]
    public async Task A_profile_that_does_not_exist_is_a_clean_502_and_nothing_is_sent()
    {
        await using var upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { AwsCredentials = new AwsCredentials(ProfileKeyId, ProfileSecret) });
        await using var gateway = await GatewayHost.StartAsync(Config(upstream, "us-east-1", ", profile: nobody-here"));

        using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"claude","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("upstream_misconfigured", error.GetProperty("code").GetString());
        Assert.Equal(0, upstream.RequestCount);
        await gateway.Logs.WaitForLinesAsync(line => line.Contains("nobody-here", StringComparison.Ordinal));
    }

    private static string Config(FakeUpstreamServer upstream, string region, string credentials) => $$"""
        providers:
          - { name: aws, kind: bedrock, region: {{region}}, baseUrl: "{{upstream.BedrockEndpoint}}"{{credentials}} }
        deployments:
          - { name: sonnet, provider: aws, model: "anthropic.claude-sonnet-4-5-20250929-v1:0" }
        routes:
          - { name: claude, targets: [sonnet] }
        """;

    private static async Task<string?> ContentAsync(HttpResponseMessage response)
        => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();
}

/// <summary>Tests that change process-wide AWS environment variables run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AwsEnvironmentCollection : ICollectionFixture<AwsEnvironmentFixture>
{
    public const string Name = "AWS environment";
}

/// <summary>
/// The shared AWS config and credentials files of the collection: one place for the whole run, since
/// AWSSDK.Core remembers where the files were when it first read them.
/// </summary>
public sealed class AwsEnvironmentFixture : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("modelgateway-aws-").FullName;

    public AwsEnvironmentFixture()
    {
        File.WriteAllText(ConfigFile, string.Empty);
    }

    public string CredentialsFile => Path.Combine(_directory, "credentials");

    public string ConfigFile => Path.Combine(_directory, "config");

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
