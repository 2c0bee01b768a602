using System.Globalization;
using ModelGateway.Hosting;
using ModelGateway.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace ModelGateway.Tests.Deploy;

/// <summary>
/// deploy/kubernetes rendered with <c>kubectl kustomize</c> and checked against the gateway: probe
/// paths answer on a real gateway, ports and mount paths are the ones it uses, every environment
/// variable is a setting it reads with a value it accepts, the routing file compiles, and every
/// Secret or ConfigMap key a pod needs is produced by the overlay or documented as the operator's.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class KubernetesManifestTests
{
    public static TheoryData<string> Overlays() => new() { "single", "ha" };

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task The_gateway_pod_uses_only_settings_ports_paths_and_files_the_gateway_has(string overlay)
    {
        var documents = await ManifestChecks.RenderAsync(overlay);
        var deployment = Single(documents, "Deployment", "modelgateway");
        var pod = deployment.At("spec", "template", "spec")!;
        var container = pod.Items("containers").Single(c => c.Text("name") == "modelgateway");
        var environment = container.Items("env").Where(e => e.Text("value") is not null).ToDictionary(e => e.Text("name")!, e => e.Text("value")!);
        var allNames = container.Items("env").Select(e => e.Text("name")!).ToList();
        var ports = container.Items("ports").ToDictionary(p => p.Text("name")!, p => int.Parse(p.Text("containerPort")!, CultureInfo.InvariantCulture));

        // Settings: known names, values the gateway's options accept.
        var configMaps = documents.Where(d => d.Kind() == "ConfigMap").ToDictionary(d => d.Name(), d => d.Pairs("data").ToDictionary(p => p.Key, p => p.Value));
        var routingPath = environment["MODELGATEWAY_CONFIG"];
        var routingMount = container.Items("volumeMounts").Single(m => m.Text("mountPath") == Path.GetDirectoryName(routingPath));
        Assert.Null(routingMount.Text("subPath"));
        var routingVolume = pod.Items("volumes").Single(v => v.Text("name") == routingMount.Text("name"));
        var routingConfigMap = routingVolume.Text("configMap", "name")!;
        Assert.True(configMaps.TryGetValue(routingConfigMap, out var routingData), $"the overlay does not produce ConfigMap {routingConfigMap}");
        Assert.True(routingData.TryGetValue(Path.GetFileName(routingPath), out var routingText), $"ConfigMap {routingConfigMap} has no key {Path.GetFileName(routingPath)}");
        Assert.Equal(PublishedGateway.RoutingMountPath, routingPath);

        var (routingProblems, secretFiles, secretVariables) = ManifestChecks.CompileRouting(routingText);
        Assert.Empty(routingProblems);
        var problems = ManifestChecks.CheckEnvironment(environment.Concat(allNames.Except(environment.Keys).Select(n => KeyValuePair.Create(n, n == "MODELGATEWAY_MASTER_KEY" ? "secret" : "x"))).ToDictionary(), secretVariables);
        Assert.Empty(problems);

        // The routing file's secret files sit in a mounted Secret, under a key the Secret provides.
        foreach (var file in secretFiles)
        {
            var mount = container.Items("volumeMounts").SingleOrDefault(m => m.Text("mountPath") == Path.GetDirectoryName(file));
            Assert.True(mount is not null, $"nothing is mounted at {Path.GetDirectoryName(file)} for {file}");
            var volume = pod.Items("volumes").Single(v => v.Text("name") == mount.Text("name"));
            var item = volume.Items("secret", "items").SingleOrDefault(i => i.Text("path") == Path.GetFileName(file));
            Assert.True(item is not null, $"Secret volume {mount.Text("name")} does not project {Path.GetFileName(file)}");
        }

        // Ports: the image listens on 8080; the admin port is the one configured.
        Assert.Equal(8080, ports["http"]);
        Assert.Equal(int.Parse(environment["Admin__Port"], CultureInfo.InvariantCulture), ports["admin"]);
        Assert.Contains("ASPNETCORE_URLS=http://0.0.0.0:8080", await File.ReadAllTextAsync(Path.Combine(ManifestChecks.Root, "Dockerfile")), StringComparison.Ordinal);

        // Probes: named ports that exist, on paths that answer on a real gateway.
        var probes = new[] { "readinessProbe", "livenessProbe" }.Select(p => container.At(p)!).ToList();
        Assert.All(probes, probe => Assert.Equal("http", probe.Text("httpGet", "port")));
        Assert.Equal("/healthz/ready", container.Text("readinessProbe", "httpGet", "path"));
        await using (var gateway = await GatewayHost.StartAsync(null))
        {
            foreach (var probe in probes)
            {
                using var answer = await gateway.Http.GetAsync(probe.Text("httpGet", "path")!.TrimStart('/'));
                Assert.Equal(System.Net.HttpStatusCode.OK, answer.StatusCode);
            }
        }

        // Services point at named ports of the container.
        foreach (var service in documents.Where(d => d.Kind() == "Service" && d.Name().StartsWith("modelgateway", StringComparison.Ordinal) && d.Name() != "modelgateway-redis"))
        {
            Assert.All(service.Items("spec", "ports"), port => Assert.Contains(port.Text("targetPort")!, ports.Keys));
            Assert.True(Matches(service.Pairs("spec", "selector"), deployment.Pairs("spec", "template", "metadata", "labels")), $"Service {service.Name()} selects no gateway pod");
        }

        // Container conventions: non-root, read-only root file system with /tmp writable.
        Assert.Equal("true", pod.Text("securityContext", "runAsNonRoot"));
        Assert.Equal("true", container.Text("securityContext", "readOnlyRootFilesystem"));
        Assert.Equal("false", container.Text("securityContext", "allowPrivilegeEscalation"));
        Assert.Contains(container.Items("volumeMounts"), m => m.Text("mountPath") == "/tmp");

        // The kill deadline comes after the whole drain.
        var shutdown = ManifestChecks.Shutdown(environment);
        var terminationGrace = TimeSpan.FromSeconds(int.Parse(pod.Text("terminationGracePeriodSeconds")!, CultureInfo.InvariantCulture));
        Assert.True(terminationGrace > shutdown.Total, $"terminationGracePeriodSeconds {terminationGrace.TotalSeconds} is not above Shutdown Delay + Grace + {ShutdownOptions.EndAllowance.TotalSeconds} s = {shutdown.Total.TotalSeconds} s");

        // Every key a pod reads from a Secret or ConfigMap is produced here or documented as the operator's.
        var documented = await File.ReadAllTextAsync(Path.Combine(ManifestChecks.Root, "docs", "deployment.md"));
        var secrets = documents.Where(d => d.Kind() == "Secret").ToDictionary(d => d.Name(), d => d.Pairs("data").Select(p => p.Key).Concat(d.Pairs("stringData").Select(p => p.Key)).ToHashSet());
        foreach (var (kind, name, key) in References(pod))
        {
            if (kind == "ConfigMap")
            {
                Assert.True(configMaps.TryGetValue(name, out var data) && data.ContainsKey(key), $"ConfigMap {name} key {key} is not produced by the {overlay} overlay");
            }
            else if (!(secrets.TryGetValue(name, out var keys) && keys.Contains(key)))
            {
                Assert.True(documented.Contains($"| `{name}` | `{key}` |", StringComparison.Ordinal), $"Secret {name} key {key} is neither produced by the {overlay} overlay nor documented in docs/deployment.md as | `{name}` | `{key}` |");
            }
        }
    }

    [Fact]
    public async Task The_single_overlay_runs_one_replica_on_in_memory_state()
    {
        var documents = await ManifestChecks.RenderAsync("single");
        var deployment = Single(documents, "Deployment", "modelgateway");
        Assert.Equal("1", deployment.Text("spec", "replicas"));
        Assert.DoesNotContain(deployment.At("spec", "template", "spec")!.Items("containers").SelectMany(c => c.Items("env")), e => e.Text("name") == "State__Redis");
        Assert.DoesNotContain(documents, d => d.Kind() is "StatefulSet" or "HorizontalPodAutoscaler");
    }

    [Fact]
    public async Task The_ha_overlay_shares_state_in_a_persistent_Redis_spreads_and_protects_replicas_scales_on_CPU_and_keeps_the_admin_port_internal()
    {
        var documents = await ManifestChecks.RenderAsync("ha");
        var deployment = Single(documents, "Deployment", "modelgateway");
        var podLabels = deployment.Pairs("spec", "template", "metadata", "labels").ToList();
        var pod = deployment.At("spec", "template", "spec")!;
        var container = pod.Items("containers").Single(c => c.Text("name") == "modelgateway");
        var environment = container.Items("env").Where(e => e.Text("value") is not null).ToDictionary(e => e.Text("name")!, e => e.Text("value")!);
        var adminPort = int.Parse(environment["Admin__Port"], CultureInfo.InvariantCulture);

        // Redis: the address the replicas use is a Service of the overlay, backed by Redis with an
        // append-only file on a persistent volume.
        var redisAddress = environment["State__Redis"].Split(':');
        var redisService = Single(documents, "Service", redisAddress[0]);
        Assert.Contains(redisService.Items("spec", "ports"), p => p.Text("port") == redisAddress[1]);
        var redis = documents.Single(d => d.Kind() == "StatefulSet" && Matches(redisService.Pairs("spec", "selector"), d.Pairs("spec", "template", "metadata", "labels")));
        var redisArgs = string.Join(' ', redis.At("spec", "template", "spec")!.Items("containers").Single().Items("args").Select(a => ((YamlScalarNode)a).Value));
        Assert.Contains("--appendonly yes", redisArgs, StringComparison.Ordinal);
        var dataMount = redis.At("spec", "template", "spec")!.Items("containers").Single().Items("volumeMounts").Single(m => m.Text("mountPath") == "/data");
        Assert.Contains(redis.Items("spec", "volumeClaimTemplates"), claim => claim.Name() == dataMount.Text("name"));

        // Replicas, the fail-open share and the autoscaler agree.
        var hpa = Single(documents, "HorizontalPodAutoscaler", "modelgateway");
        Assert.Equal(deployment.Name(), hpa.Text("spec", "scaleTargetRef", "name"));
        Assert.Equal("Deployment", hpa.Text("spec", "scaleTargetRef", "kind"));
        Assert.Equal(deployment.Text("spec", "replicas"), hpa.Text("spec", "minReplicas"));
        Assert.Equal(deployment.Text("spec", "replicas"), environment["State__FailOpenReplicas"]);
        Assert.Contains(hpa.Items("spec", "metrics"), m => m.Text("resource", "name") == "cpu");

        // Disruptions and placement: both select the gateway pods.
        var pdb = Single(documents, "PodDisruptionBudget", "modelgateway");
        Assert.True(Matches(pdb.Pairs("spec", "selector", "matchLabels"), podLabels), "the PodDisruptionBudget selects no gateway pod");
        var spread = pod.Items("topologySpreadConstraints").ToList();
        Assert.Contains(spread, s => s.Text("topologyKey") == "kubernetes.io/hostname");
        Assert.Contains(spread, s => s.Text("topologyKey") == "topology.kubernetes.io/zone");
        Assert.All(spread, s => Assert.True(Matches(s.Pairs("labelSelector", "matchLabels"), podLabels)));

        // Metrics: the ServiceMonitor scrapes /metrics on the admin Service's port, which is the admin port.
        var monitor = Single(documents, "ServiceMonitor", "modelgateway");
        var adminService = documents.Single(d => d.Kind() == "Service" && Matches(monitor.Pairs("spec", "selector", "matchLabels"), d.Pairs("metadata", "labels")));
        var endpoint = monitor.Items("spec", "endpoints").Single();
        Assert.Equal("/metrics", endpoint.Text("path"));
        var scraped = adminService.Items("spec", "ports").Single(p => p.Text("name") == endpoint.Text("port"));
        var containerPorts = container.Items("ports").ToDictionary(p => p.Text("name")!, p => int.Parse(p.Text("containerPort")!, CultureInfo.InvariantCulture));
        Assert.Equal(adminPort, containerPorts[scraped.Text("targetPort")!]);

        // NetworkPolicy: the API port is open, the admin port only to chosen peers.
        var policy = documents.Single(d => d.Kind() == "NetworkPolicy" && Matches(d.Pairs("spec", "podSelector", "matchLabels"), podLabels));
        var rules = policy.Items("spec", "ingress").ToList();
        Assert.Contains(rules, r => r.At("from") is null && r.Items("ports").Any(p => p.Text("port") == "http"));
        Assert.All(rules.Where(r => r.Items("ports").Any(p => p.Text("port") == "admin" || p.Text("port") == adminPort.ToString(CultureInfo.InvariantCulture))), rule =>
            Assert.True(rule.Items("from").Any(), "a rule opens the admin port to everyone"));
        Assert.DoesNotContain(rules, r => !r.Items("ports").Any());
        var redisPolicy = documents.Single(d => d.Kind() == "NetworkPolicy" && Matches(d.Pairs("spec", "podSelector", "matchLabels"), redis.Pairs("spec", "template", "metadata", "labels")));
        Assert.All(redisPolicy.Items("spec", "ingress"), rule => Assert.All(rule.Items("from"), peer => Assert.True(Matches(peer.Pairs("podSelector", "matchLabels"), podLabels))));
    }

    private static YamlMappingNode Single(List<YamlMappingNode> documents, string kind, string name)
    {
        var found = documents.Where(d => d.Kind() == kind && d.Name() == name).ToList();
        Assert.True(found.Count == 1, $"expected one {kind} {name}, found {found.Count}");
        return found[0];
    }

    private static bool Matches(IEnumerable<(string Key, string Value)> selector, IEnumerable<(string Key, string Value)> labels)
    {
        var set = labels.ToHashSet();
        var wanted = selector.ToList();
        return wanted.Count > 0 && wanted.All(set.Contains);
    }

    // (kind, name, key) of every Secret and ConfigMap key the pod reads, by env or by volume.
    private static IEnumerable<(string Kind, string Name, string Key)> References(YamlNode pod)
    {
        foreach (var container in pod.Items("containers"))
        {
            foreach (var variable in container.Items("env"))
            {
                if (variable.At("valueFrom", "secretKeyRef") is { } secret)
                {
                    yield return ("Secret", secret.Text("name")!, secret.Text("key")!);
                }

                if (variable.At("valueFrom", "configMapKeyRef") is { } configMap)
                {
                    yield return ("ConfigMap", configMap.Text("name")!, configMap.Text("key")!);
                }
            }
        }

        foreach (var volume in pod.Items("volumes"))
        {
            foreach (var item in volume.Items("secret", "items"))
            {
                yield return ("Secret", volume.Text("secret", "secretName")!, item.Text("key")!);
            }

            foreach (var item in volume.Items("configMap", "items"))
            {
                yield return ("ConfigMap", volume.Text("configMap", "name")!, item.Text("key")!);
            }
        }
    }
}
