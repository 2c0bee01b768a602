using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Configuration;
using ModelGateway.Providers.VertexAI;

namespace ModelGateway.Tests.Providers;

/// <summary>
/// Vertex AI's credentials: tokens come from the key's token endpoint through Google.Apis.Auth, cached until
/// shortly before they expire; and a provider entry is checked field by field before anything runs.
/// </summary>
public sealed class GoogleCredentialsTests : IAsyncLifetime
{
    private GoogleTokenServer _tokens = null!;
    private string _directory = null!;

    public async Task InitializeAsync()
    {
        _tokens = await GoogleTokenServer.StartAsync(TimeSpan.FromHours(1), sameTokenEachTime: false);
        _directory = Directory.CreateTempSubdirectory("modelgateway-google-").FullName;
    }

    public async Task DisposeAsync()
    {
        await _tokens.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task A_token_is_fetched_once_and_fetched_again_only_as_it_nears_expiry()
    {
        const string Email = "refresh@test-project.iam.gserviceaccount.com";
        var key = ServiceAccountKey.Parse(_tokens.CreateServiceAccountKey(Email), out var problem);
        Assert.Null(problem);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 9, 0, 0, TimeSpan.Zero));
        var tokens = GoogleAccessTokens.ForServiceAccount(key!, time);

        var first = await tokens.GetAsync(CancellationToken.None);
        var again = await tokens.GetAsync(CancellationToken.None);
        time.Advance(TimeSpan.FromMinutes(30));
        var halfway = await tokens.GetAsync(CancellationToken.None);

        Assert.Equal(first, again);
        Assert.Equal(first, halfway);
        Assert.Equal(1, _tokens.IssuedTo(Email));

        // Thirty seconds before the hour is up the token is no longer used: a new one is fetched first.
        time.Advance(TimeSpan.FromMinutes(29.5));
        var renewed = await tokens.GetAsync(CancellationToken.None);

        Assert.NotEqual(first, renewed);
        Assert.Equal(2, _tokens.IssuedTo(Email));
    }

    [Fact]
    public async Task A_key_the_token_endpoint_refuses_fails_with_googles_reason_and_no_secret()
    {
        var json = _tokens.CreateServiceAccountKey("stranger@test-project.iam.gserviceaccount.com", trusted: false);
        var tokens = GoogleAccessTokens.ForServiceAccount(ServiceAccountKey.Parse(json, out _)!, TimeProvider.System);

        var failure = await Assert.ThrowsAsync<GoogleCredentialException>(async () => await tokens.GetAsync(CancellationToken.None));

        Assert.Contains("invalid_grant", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", failure.ToString(), StringComparison.Ordinal);
        Assert.Equal(1, _tokens.Refused);
    }

    [Fact]
    public void A_key_prints_as_its_account_never_as_its_private_key()
    {
        var key = ServiceAccountKey.Parse(_tokens.CreateServiceAccountKey("print@test-project.iam.gserviceaccount.com"), out _)!;

        Assert.Equal("service account print@test-project.iam.gserviceaccount.com", key.ToString());
    }

    [Fact]
    public void Google_provider_entries_are_checked_field_by_field()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        using var provider = services.BuildServiceProvider();
        var userCredential = Path.Combine(_directory, "user.json");
        File.WriteAllText(userCredential, """{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}""");
        var damaged = Path.Combine(_directory, "damaged.json");
        File.WriteAllText(damaged, """{"type":"service_account","client_email":"a@b.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}""");
        var document = RoutingConfigLoader.Parse($$"""
            providers:
              - { name: v1, kind: vertex-ai, apiKey: "env:HOME", location: "us-central1/../x", publisher: meta }
              - { name: v2, kind: vertex-ai, project: p, location: us-east5, credentialsFile: "file:{{userCredential}}" }
              - { name: v3, kind: vertex-ai, project: p, location: global, credentialsFile: "file:{{damaged}}" }
              - { name: g, kind: gemini, apiKey: "env:HOME", project: p, apiVersion: v9 }
              - { name: o, kind: openai, apiKey: "env:HOME", location: us-east5 }
            deployments:
              - { name: d1, provider: v1, model: gemini-2.5-pro }
              - { name: d2, provider: v2, model: gemini-2.5-pro, capabilities: [embeddings] }
            """, out var errors);
        var warnings = new List<ConfigError>();

        var catalog = provider.GetRequiredService<CatalogBuilder>().Build(document!, "test", "hash", 1, errors, warnings);

        Assert.Null(catalog);
        var paths = errors.Select(e => e.Path).ToHashSet();
        Assert.Subset(paths, new HashSet<string>
        {
            "providers[0].apiKey", "providers[0].project", "providers[0].location", "providers[0].publisher",
            "providers[1].credentialsFile", "providers[2].credentialsFile",
            "providers[3].project", "providers[3].apiVersion",
            "providers[4].location",
            "deployments[1].capabilities[0]",
        });
        Assert.Contains(errors, e => e.Path == "providers[1].credentialsFile" && e.Message.Contains("GOOGLE_APPLICATION_CREDENTIALS", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Path == "providers[2].credentialsFile" && e.Message.Contains("PKCS#8", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Message.Contains("AAAA", StringComparison.Ordinal));
    }
}
