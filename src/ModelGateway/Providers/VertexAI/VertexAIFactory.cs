using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using ModelGateway.Configuration;

namespace ModelGateway.Providers.VertexAI;

/// <summary>
/// <c>kind: vertex-ai</c>: Google Cloud's Vertex AI, Gemini models (publisher <c>google</c>) and Claude
/// models (publisher <c>anthropic</c>) on regional endpoints, with OAuth 2 access tokens.
/// </summary>
internal sealed class VertexAIFactory(ProviderServices services) : ProviderAdapterFactory(services)
{
    // Token sources by credential, so that a reload keeps the cached token instead of fetching a new one.
    private readonly ConcurrentDictionary<string, GoogleAccessTokens> _tokens = new(StringComparer.Ordinal);

    public override string Kind => ProviderKinds.VertexAI;

    public override string SemanticName => "gcp.vertex_ai";

    public override DeploymentTier DefaultTier => DeploymentTier.Paas;

    /// <summary>Only a placeholder for bookkeeping: requests go to the location's regional endpoint unless <c>baseUrl</c> is set.</summary>
    public override Uri? DefaultBaseUrl { get; } = new("https://aiplatform.googleapis.com");

    // Embeddings on Vertex AI are another wire (:predict), not served; Claude deployments continue a prefill.
    public override Capabilities Supports => Capabilities.Chat | Capabilities.Tools | Capabilities.Vision | Capabilities.JsonSchema | Capabilities.Prefill;

    public override Capabilities DefaultCapabilities => Capabilities.Chat | Capabilities.Tools | Capabilities.Vision | Capabilities.JsonSchema;

    // Neither Gemini nor Claude on Vertex AI fetches an arbitrary URL.
    public override bool TakesMediaUrls => false;

    protected override bool TakesGoogleCloudSettings => true;

    protected override object? Compile(ProviderDocument document, string path, ConfigContext context)
    {
        // Vertex AI authenticates with OAuth tokens only; its API keys ("express mode") are not what this kind speaks.
        context.NotFor(document.ApiKey, path + ".apiKey", Kind);

        var project = document.Project;
        if (string.IsNullOrWhiteSpace(project))
        {
            context.Error(path + ".project", "required for this kind: the Google Cloud project id (e.g. my-project-123)");
        }
        else if (!IsPathSafe(project, allowColon: true))
        {
            context.Error(path + ".project", $"'{project}' is not a Google Cloud project id");
        }

        var location = document.Location;
        if (string.IsNullOrWhiteSpace(location))
        {
            context.Error(path + ".location", "required for this kind: a region such as us-central1 or europe-west4, or global");
        }
        else if (!IsPathSafe(location, allowColon: false) || location.Contains('.', StringComparison.Ordinal))
        {
            context.Error(path + ".location", $"'{location}' is not a Google Cloud location");
        }

        if (document.Publisher is not (null or VertexAISettings.Google or VertexAISettings.Anthropic))
        {
            context.Error(path + ".publisher", $"'{document.Publisher}' is not a publisher this kind speaks (google or anthropic)");
        }

        ServiceAccountKey? key = null;
        var credentialId = "adc";
        if (context.ResolveSecret(document.CredentialsFile, path + ".credentialsFile") is { } json)
        {
            key = ServiceAccountKey.Parse(json.Value, out var problem);
            if (key is null)
            {
                context.Error(path + ".credentialsFile", problem!);
            }

            credentialId = "sa:" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(json.Value)));
        }

        if (project is null || location is null)
        {
            return null;
        }

        var endpoint = string.IsNullOrWhiteSpace(document.BaseUrl) ? VertexAISettings.RegionalEndpoint(location) : document.BaseUrl.TrimEnd('/');
        return new VertexAISettings(project, location, document.Publisher, endpoint, key, credentialId);
    }

    public override IProviderAdapter Create(ProviderEndpoint provider)
    {
        var settings = provider.SettingsAs<VertexAISettings>();
        var tokens = _tokens.GetOrAdd(settings.CredentialId, static (_, state) => state.Key is { } key
            ? GoogleAccessTokens.ForServiceAccount(key, state.Time)
            : GoogleAccessTokens.ForApplicationDefault(), (settings.Key, Time: Services.TimeProvider));
        return new VertexAIAdapter(provider, settings, tokens, Services);
    }

    // Project and location go into the URL path: nothing that could leave the segment.
    private static bool IsPathSafe(string value, bool allowColon)
    {
        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '.' || (allowColon && c == ':')))
            {
                return false;
            }
        }

        return value.Length is > 0 and <= 100;
    }
}
