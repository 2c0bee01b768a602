using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.Configuration;

namespace ModelGateway.Tests.Configuration;

/// <summary>
/// The routing files in deploy/examples compile under the gateway's real validator, and
/// docs/routing-config.schema.json names exactly the fields the loader accepts.
/// </summary>
public sealed class ExamplesTests : IDisposable
{
    private const string DummySecret = "dummy-value-for-examples-test";
    private static readonly string RepositoryRoot = FindRepositoryRoot();
    private static readonly string ExamplesDirectory = Path.Combine(RepositoryRoot, "deploy", "examples");
    private static readonly string SchemaPath = Path.Combine(RepositoryRoot, "docs", "routing-config.schema.json");

    private readonly ServiceProvider _services;

    public ExamplesTests()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        GatewayApplication.AddGateway(services, new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
    }

    public void Dispose() => _services.Dispose();

    public static TheoryData<string> Examples()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(ExamplesDirectory, "*.yaml").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(file));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public void Every_example_compiles_without_errors(string file)
    {
        var text = File.ReadAllText(Path.Combine(ExamplesDirectory, file));
        var document = RoutingConfigLoader.Parse(text, out var errors);
        AssertNone(errors, $"{file} does not parse");
        Assert.NotNull(document);

        // Secrets come from the environment: give every referenced variable a value for the test only.
        var variables = EnvironmentReferences(document).Where(v => string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v))).ToList();
        var warnings = new List<ConfigError>();
        GatewayCatalog? catalog;
        try
        {
            foreach (var variable in variables)
            {
                Environment.SetEnvironmentVariable(variable, DummySecret);
            }

            catalog = _services.GetRequiredService<CatalogBuilder>().Build(document, file, "hash", 1, errors, warnings);
        }
        finally
        {
            foreach (var variable in variables)
            {
                Environment.SetEnvironmentVariable(variable, null);
            }
        }

        AssertNone(errors, $"{file} has errors");
        AssertNone(warnings, $"{file} has warnings");
        Assert.NotNull(catalog);
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public void Every_example_says_how_to_run_it_and_which_variables_to_export(string file)
    {
        var text = File.ReadAllText(Path.Combine(ExamplesDirectory, file));
        var document = RoutingConfigLoader.Parse(text, out _);
        Assert.NotNull(document);
        var header = string.Join('\n', text.Split('\n').TakeWhile(line => line.StartsWith('#')));

        Assert.StartsWith("# yaml-language-server: $schema=../../docs/routing-config.schema.json", header, StringComparison.Ordinal);
        Assert.Contains($"dotnet run --project src/ModelGateway -- --config \"$PWD/deploy/examples/{file}\"", header, StringComparison.Ordinal);
        foreach (var variable in EnvironmentReferences(document))
        {
            Assert.Contains($"export {variable}=", header, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_schema_names_exactly_the_fields_of_the_document_classes()
    {
        using var schema = JsonDocument.Parse(File.ReadAllText(SchemaPath));
        var root = schema.RootElement;
        var definitions = root.GetProperty("$defs");
        var problems = new List<string>();
        var mapped = new HashSet<string>(StringComparer.Ordinal);

        foreach (var type in DocumentTypes())
        {
            var where = type == typeof(RoutingConfigDocument) ? "the schema root" : $"$defs/{DefinitionName(type)}";
            JsonElement definition;
            if (type == typeof(RoutingConfigDocument))
            {
                definition = root;
            }
            else if (!definitions.TryGetProperty(DefinitionName(type), out definition))
            {
                problems.Add($"{type.Name}: {where} is missing");
                continue;
            }

            mapped.Add(DefinitionName(type));
            if (!definition.TryGetProperty("additionalProperties", out var additional) || additional.ValueKind != JsonValueKind.False)
            {
                problems.Add($"{type.Name}: {where} must set additionalProperties: false (the loader rejects unknown fields)");
            }

            var properties = definition.GetProperty("properties");
            var inSchema = properties.EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                var name = JsonNamingPolicy.CamelCase.ConvertName(property.Name);
                if (!inSchema.Remove(name))
                {
                    problems.Add($"{type.Name}.{property.Name}: '{name}' is missing from {where}");
                    continue;
                }

                if (DocumentType(property.PropertyType) is { } nested
                    && !References(properties.GetProperty(name)).Contains($"#/$defs/{DefinitionName(nested)}"))
                {
                    problems.Add($"{type.Name}.{property.Name}: {where} should refer to #/$defs/{DefinitionName(nested)}");
                }
            }

            problems.AddRange(inSchema.Select(extra => $"{type.Name}: {where} has '{extra}', which the class does not have"));
        }

        foreach (var definition in definitions.EnumerateObject())
        {
            if (definition.Value.TryGetProperty("properties", out _) && !mapped.Contains(definition.Name))
            {
                problems.Add($"$defs/{definition.Name} has fields but matches no document class");
            }
        }

        AssertNone(problems, "docs/routing-config.schema.json and the document classes disagree");
    }

    [Theory]
    [InlineData("800ms")]
    [InlineData("30s")]
    [InlineData("5m")]
    [InlineData("1h")]
    [InlineData("1m30s")]
    [InlineData("1.5s")]
    [InlineData(".5s")]
    [InlineData("0s")]
    [InlineData("1h2m3s4ms")]
    [InlineData("30")]
    [InlineData("5 m")]
    [InlineData("5min")]
    [InlineData("5M")]
    [InlineData("1d")]
    [InlineData("-1s")]
    [InlineData("1.2.3s")]
    [InlineData("ms")]
    public void The_schema_duration_pattern_agrees_with_the_duration_parser(string text)
    {
        using var schema = JsonDocument.Parse(File.ReadAllText(SchemaPath));
        var pattern = schema.RootElement.GetProperty("$defs").GetProperty("duration").GetProperty("pattern").GetString()!;

        // JSON Schema patterns are ECMA-262 regular expressions.
        Assert.Equal(Durations.TryParse(text, out _), Regex.IsMatch(text, pattern, RegexOptions.ECMAScript));
    }

    // Lists every problem in full: the admin-facing text is the point of these tests.
    private static void AssertNone<T>(IEnumerable<T> problems, string what)
    {
        var lines = problems.Select(p => "  " + p).ToList();
        if (lines.Count > 0)
        {
            Assert.Fail($"{what}:{Environment.NewLine}{string.Join(Environment.NewLine, lines)}");
        }
    }

    /// <summary>The document classes reachable from the root, as the deserializer walks them.</summary>
    private static List<Type> DocumentTypes()
    {
        var found = new List<Type> { typeof(RoutingConfigDocument) };
        for (var i = 0; i < found.Count; i++)
        {
            foreach (var property in found[i].GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (DocumentType(property.PropertyType) is { } nested && !found.Contains(nested))
                {
                    found.Add(nested);
                }
            }
        }

        return found;
    }

    /// <summary>The document class a property holds, directly or as list elements; null for plain values.</summary>
    private static Type? DocumentType(Type type)
    {
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))
        {
            type = type.GetGenericArguments()[0];
        }

        return type.IsClass && type.Namespace == typeof(RoutingConfigDocument).Namespace && type.Name.EndsWith("Document", StringComparison.Ordinal)
            ? type
            : null;
    }

    /// <summary><c>ProviderDocument</c> is described by <c>$defs/provider</c>.</summary>
    private static string DefinitionName(Type type) => JsonNamingPolicy.CamelCase.ConvertName(type.Name[..^"Document".Length]);

    private static HashSet<string> References(JsonElement element)
    {
        var references = new HashSet<string>(StringComparer.Ordinal);
        Collect(element);
        return references;

        void Collect(JsonElement node)
        {
            switch (node.ValueKind)
            {
                case JsonValueKind.Object:
                    foreach (var property in node.EnumerateObject())
                    {
                        if (property.Name == "$ref" && property.Value.GetString() is { } reference)
                        {
                            references.Add(reference);
                        }

                        Collect(property.Value);
                    }

                    break;
                case JsonValueKind.Array:
                    foreach (var item in node.EnumerateArray())
                    {
                        Collect(item);
                    }

                    break;
            }
        }
    }

    /// <summary>The NAME of every <c>env:NAME</c> secret in the file: provider keys and header values.</summary>
    private static List<string> EnvironmentReferences(RoutingConfigDocument document)
    {
        var secrets = new List<string?>();
        foreach (var provider in document.Providers ?? [])
        {
            secrets.Add(provider.ApiKey);
            if (provider.Headers is not null)
            {
                secrets.AddRange(provider.Headers.Values);
            }
        }

        return secrets
            .Where(s => s is not null && s.StartsWith("env:", StringComparison.Ordinal))
            .Select(s => s![4..])
            .Distinct(StringComparer.Ordinal)
            .ToList();
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ModelGateway.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No ModelGateway.sln above {AppContext.BaseDirectory}.");
    }
}
