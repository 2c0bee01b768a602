using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream;

namespace ModelGateway.Tests.Deploy;

/// <summary>
/// No container can start on the test machines, so the image's conventions are checked on the
/// published output run as a process: an unprivileged user, a read-only application folder as the
/// working directory, settings only from the environment and secrets only from mounted files,
/// listening on 0.0.0.0, and a clean exit on SIGTERM. The image build itself is checked in CI.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Collection(DeploymentCollection.Name)]
public sealed class ContainerConventionsTests
{
    private const string ProviderKey = "sk-from-the-mounted-secret-4d1c";
    private const string MasterKey = "mk-from-the-environment-93ab";

    [Fact]
    public async Task The_published_gateway_serves_as_an_unprivileged_user_from_a_read_only_folder_with_settings_from_the_environment_and_secrets_from_mounted_files()
    {
        await using var upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = ProviderKey });
        using var mount = MountedFolder.Create(new Dictionary<string, string>
        {
            ["secrets/openai"] = ProviderKey + "\n",
            ["config/routing.yaml"] = $$"""
                providers:
                  - name: upstream
                    kind: openai-compatible
                    baseUrl: "{{upstream.OpenAIBaseUrl}}"
                    apiKey: file:{MOUNT}/secrets/openai
                deployments:
                  - { name: d, provider: upstream, model: m }
                routes:
                  - { name: chat, targets: [d] }
                """,
        });
        var tmp = Directory.CreateTempSubdirectory("modelgateway-tmpdir-").FullName;
        File.SetUnixFileMode(tmp, (UnixFileMode)0x3FF | UnixFileMode.StickyBit);
        var app = await PublishedGateway.FolderAsync();
        var before = Snapshot(app);

        await using var replica = await GatewayReplica.StartAsync("unprivileged", new Dictionary<string, string>
        {
            ["MODELGATEWAY_CONFIG"] = mount.PathOf("config/routing.yaml"),
            ["MODELGATEWAY_MASTER_KEY"] = MasterKey,
            ["Auth__Mode"] = "keys",
            ["Shutdown__Delay"] = "00:00:00.500",
            ["TMPDIR"] = tmp,
        }, unprivileged: true);

        if (Environment.UserName == "root")
        {
            var status = await File.ReadAllLinesAsync($"/proc/{replica.ProcessId}/status");
            Assert.Contains(status, line => line.StartsWith("Uid:", StringComparison.Ordinal) && line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == GatewayReplica.UnprivilegedId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        // The master key came from the environment: it creates a virtual key.
        using var create = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = new StringContent("""{"name":"container-check"}""", Encoding.UTF8, "application/json") };
        create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var created = await replica.Http.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var key = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;

        // The provider key came from the mounted file: the upstream refuses anything else.
        var (status200, body) = await ChatCalls.CompleteAsync(replica.Http, "chat", key);
        Assert.True(status200 == 200, $"chat answered {status200}: {body}\n{replica.OutputText}");
        var streamed = await ChatCalls.StreamAsync(replica.Http, "chat", key);
        Assert.Equal(StreamEnd.Done, streamed.End);

        Assert.Equal(0, await replica.StopAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(before, Snapshot(app));
        Assert.DoesNotContain(replica.Output, line => line.Contains("denied", StringComparison.OrdinalIgnoreCase)
            || line.Contains("read-only file system", StringComparison.OrdinalIgnoreCase)
            || line.Contains("\"@l\":\"Error\"", StringComparison.Ordinal)
            || line.Contains("\"@l\":\"Fatal\"", StringComparison.Ordinal));
        Assert.DoesNotContain(replica.Output, line => line.Contains(ProviderKey, StringComparison.Ordinal) || line.Contains(MasterKey, StringComparison.Ordinal));
        PublishedGateway.TryDelete(tmp);
    }

    [Fact]
    public async Task A_routing_file_missing_from_its_mount_path_stops_the_gateway_with_exit_code_1_instead_of_serving_the_demo()
    {
        using var mount = MountedFolder.Create(new Dictionary<string, string> { ["other.txt"] = "not the routing file" });
        var app = await PublishedGateway.FolderAsync();
        var start = new System.Diagnostics.ProcessStartInfo(PublishedGateway.DotnetHost(), [Path.Combine(app, "ModelGateway.dll")])
        {
            WorkingDirectory = app,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        start.Environment["MODELGATEWAY_CONFIG"] = mount.PathOf("routing.yaml");
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{Infrastructure.RedisServer.FreePort()}";
        using var process = System.Diagnostics.Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);

        Assert.Equal(1, process.ExitCode);
        Assert.Contains(mount.PathOf("routing.yaml"), await stderr, StringComparison.Ordinal);
    }

    private static string Snapshot(string folder) => string.Join('\n', Directory
        .EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories)
        .Order(StringComparer.Ordinal)
        .Select(path => new FileInfo(path) is { Exists: true } file ? $"{path} {file.Length} {file.LastWriteTimeUtc:O}" : path));
}

/// <summary>Files as a Kubernetes ConfigMap or Secret volume presents them: owned by root, read-only to everyone.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class MountedFolder : IDisposable
{
    private MountedFolder(string root)
    {
        Root = root;
    }

    public string Root { get; }

    /// <summary>Writes each file (a <c>{MOUNT}</c> in the text becomes the folder's path), then makes the tree read-only.</summary>
    public static MountedFolder Create(IReadOnlyDictionary<string, string> files)
    {
        var root = Directory.CreateTempSubdirectory("modelgateway-mount-").FullName;
        foreach (var (relative, text) in files)
        {
            var path = Path.Combine(root, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, text.Replace("{MOUNT}", root, StringComparison.Ordinal));
        }

        PublishedGateway.MakeReadOnly(root);
        return new MountedFolder(root);
    }

    public string PathOf(string relative) => Path.Combine(Root, relative);

    public void Dispose() => PublishedGateway.TryDelete(Root);
}

/// <summary>Process-level deployment tests run one class at a time, after the parallel tests: they start several processes each.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DeploymentCollection
{
    public const string Name = "deployment";
}
