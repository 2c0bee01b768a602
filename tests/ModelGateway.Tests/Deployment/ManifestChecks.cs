using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;
using ModelGateway.Hosting;
using ModelGateway.Observability;
using ModelGateway.State;
using YamlDotNet.RepresentationModel;

namespace ModelGateway.Tests.Deploy;

/// <summary>
/// What deployment files (Kubernetes manifests, compose, the Dockerfile) are checked against: the
/// settings the gateway really reads, its routing-file loader, and the documentation.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal static partial class ManifestChecks
{
    /// <summary>Environment variables the gateway reads by name, besides <c>Section__Key</c> settings.</summary>
    public static readonly string[] NamedVariables = ["MODELGATEWAY_CONFIG", "MODELGATEWAY_MASTER_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT", "ASPNETCORE_URLS"];

    /// <summary>The settings sections the gateway binds, each to its options class.</summary>
    public static readonly IReadOnlyDictionary<string, Type> Sections = new Dictionary<string, Type>(StringComparer.OrdinalIgnoreCase)
    {
        [GatewayOptions.Section] = typeof(GatewayOptions),
        [StateOptions.Section] = typeof(StateOptions),
        [AuthOptions.Section] = typeof(AuthOptions),
        [AdminOptions.Section] = typeof(AdminOptions),
        [ObservabilityOptions.Section] = typeof(ObservabilityOptions),
        [ShutdownOptions.Section] = typeof(ShutdownOptions),
    };

    public static string Root => PublishedGateway.RepositoryRoot();

    /// <summary>
    /// Every problem with a set of environment variables as a pod or container would get them: unknown
    /// names, unknown keys, values that do not bind, values the options' validation refuses. Variables
    /// in <paramref name="secretVariables"/> are the routing file's <c>env:</c> secrets.
    /// </summary>
    public static List<string> CheckEnvironment(IReadOnlyDictionary<string, string> environment, IReadOnlyCollection<string>? secretVariables = null)
    {
        var problems = new List<string>();
        var settings = new Dictionary<string, string?>();
        foreach (var (name, value) in environment)
        {
            var parts = name.Split("__");
            if (parts.Length == 2 && Sections.ContainsKey(parts[0]))
            {
                settings[$"{parts[0]}:{parts[1]}"] = value;
            }
            else if (!NamedVariables.Contains(name, StringComparer.Ordinal) && secretVariables?.Contains(name) != true)
            {
                problems.Add($"{name}: not a variable the gateway reads");
            }
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        foreach (var (section, type) in Sections)
        {
            try
            {
                var options = configuration.GetSection(section).Get(type, binder => binder.ErrorOnUnknownConfiguration = true) ?? Activator.CreateInstance(type)!;
                var results = new List<ValidationResult>();
                if (!Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true))
                {
                    problems.AddRange(results.Select(r => $"{section}: {r.ErrorMessage}"));
                }
            }
            catch (InvalidOperationException ex)
            {
                problems.Add($"{section}: {ex.Message}");
            }
        }

        return problems;
    }

    /// <summary>The shutdown settings a set of variables gives (defaults where unset).</summary>
    public static ShutdownOptions Shutdown(IReadOnlyDictionary<string, string> environment)
    {
        var options = new ShutdownOptions();
        if (environment.TryGetValue("Shutdown__Delay", out var delay))
        {
            options.Delay = TimeSpan.Parse(delay, CultureInfo.InvariantCulture);
        }

        if (environment.TryGetValue("Shutdown__Grace", out var grace))
        {
            options.Grace = TimeSpan.Parse(grace, CultureInfo.InvariantCulture);
        }

        return options;
    }

    /// <summary>
    /// Compiles a routing file with the gateway's own loader and validator. <c>file:</c> secrets are
    /// given dummy files (their paths are returned for the mount checks); <c>env:</c> secrets dummy values.
    /// </summary>
    public static (List<string> Problems, List<string> SecretFiles, List<string> SecretVariables) CompileRouting(string text)
    {
        var problems = new List<string>();
        var files = FileSecret().Matches(text).Select(m => m.Groups[1].Value).Distinct().ToList();
        var variables = EnvSecret().Matches(text).Select(m => m.Groups[1].Value).Distinct().ToList();
        var folder = Directory.CreateTempSubdirectory("modelgateway-secrets-").FullName;
        try
        {
            var rewritten = text;
            foreach (var file in files)
            {
                var local = Path.Combine(folder, Path.GetFileName(file));
                File.WriteAllText(local, "dummy-secret-for-the-manifest-test");
                rewritten = rewritten.Replace("file:" + file, "file:" + local, StringComparison.Ordinal);
            }

            foreach (var variable in variables)
            {
                Environment.SetEnvironmentVariable(variable, "dummy-secret-for-the-manifest-test");
            }

            var document = RoutingConfigLoader.Parse(rewritten, out var errors);
            var warnings = new List<ConfigError>();
            if (document is not null)
            {
                var services = new ServiceCollection();
                services.AddLogging();
                GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
                using var provider = services.BuildServiceProvider();
                provider.GetRequiredService<CatalogBuilder>().Build(document, "manifest", "hash", 1, errors, warnings);
            }

            problems.AddRange(errors.Select(e => "routing file: " + e));
        }
        finally
        {
            foreach (var variable in variables)
            {
                Environment.SetEnvironmentVariable(variable, null);
            }

            Directory.Delete(folder, recursive: true);
        }

        return (problems, files, variables);
    }

    /// <summary>Renders a Kustomize overlay with the machine's kubectl.</summary>
    public static async Task<List<YamlMappingNode>> RenderAsync(string overlay)
    {
        var start = new ProcessStartInfo("kubectl", ["kustomize", Path.Combine(Root, "deploy", "kubernetes", "overlays", overlay)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException("kubectl is not installed: run ./test.sh, which installs it.", ex);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            Assert.True(process.ExitCode == 0, $"kubectl kustomize {overlay} failed: {await error}");
            return Documents(await output);
        }
    }

    public static List<YamlMappingNode> Documents(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return [.. stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>()];
    }

    public static YamlNode? At(this YamlNode node, params string[] path)
    {
        var current = node;
        foreach (var key in path)
        {
            if (current is not YamlMappingNode mapping || !mapping.Children.TryGetValue(new YamlScalarNode(key), out var next))
            {
                return null;
            }

            current = next;
        }

        return current;
    }

    public static string? Text(this YamlNode node, params string[] path) => (node.At(path) as YamlScalarNode)?.Value;

    public static IEnumerable<YamlNode> Items(this YamlNode node, params string[] path) => node.At(path) is YamlSequenceNode sequence ? sequence.Children : [];

    public static IEnumerable<(string Key, string Value)> Pairs(this YamlNode node, params string[] path)
        => node.At(path) is YamlMappingNode mapping ? mapping.Children.Select(c => (((YamlScalarNode)c.Key).Value!, (c.Value as YamlScalarNode)?.Value ?? string.Empty)) : [];

    public static string Kind(this YamlNode node) => node.Text("kind") ?? string.Empty;

    public static string Name(this YamlNode node) => node.Text("metadata", "name") ?? string.Empty;

    [GeneratedRegex(@"file:(/[^\s""']+)")]
    private static partial Regex FileSecret();

    [GeneratedRegex(@"env:([A-Za-z_][A-Za-z0-9_]*)")]
    private static partial Regex EnvSecret();
}
