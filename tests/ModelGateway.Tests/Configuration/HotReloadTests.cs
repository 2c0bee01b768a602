using System.Diagnostics;
using System.Net;
using System.Text;
using ModelGateway.Configuration;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Configuration;

/// <summary>Admins edit the routing file live: good edits apply without a restart, bad ones are refused and the last good config keeps serving.</summary>
public sealed class HotReloadTests : IAsyncLifetime
{
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        _gateway = await GatewayHost.StartAsync(TestConfigs.SingleOpenAI(_upstream));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task A_good_edit_takes_effect_without_a_restart()
    {
        var result = await _gateway.EditConfigAsync(TestConfigs.SingleOpenAI(_upstream, route: "renamed-model", upstreamModel: "brand-new-upstream-id"));

        Assert.True(result.Succeeded);
        Assert.Equal(2, result.ServingVersion);
        using var renamed = await _gateway.PostAsync("v1/chat/completions", Chat("renamed-model"));
        using var old = await _gateway.PostAsync("v1/chat/completions", Chat("gpt-4o-mini"));
        Assert.Equal(HttpStatusCode.OK, renamed.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, old.StatusCode);
        Assert.Equal("brand-new-upstream-id", Assert.Single(_upstream.Requests).Model);
    }

    [Fact]
    public async Task A_bad_edit_is_refused_and_the_last_good_config_keeps_serving()
    {
        var result = await _gateway.EditConfigAsync("""
            providers:
              - { name: p, kind: openai-compatible, baseUrl: http://x/v1 }
            deployments:
              - { name: d, provider: p, model: m }
            routes:
              - { name: gpt-4o-mini, targets: [d, ghost] }
            """);

        Assert.False(result.Succeeded);
        Assert.Equal(1, result.ServingVersion);
        Assert.Contains(result.Errors, e => e.ToString() == "routes[0].targets[1]: unknown deployment 'ghost'");
        using var response = await _gateway.PostAsync("v1/chat/completions", Chat("gpt-4o-mini"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("gpt-4o-mini-2024-07-18", Assert.Single(_upstream.Requests).Model);
        Assert.Contains(_gateway.Logs.Lines, l => l.Contains("refused", StringComparison.Ordinal) && l.Contains("unknown deployment 'ghost'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_edit_is_noticed_by_the_watcher_without_being_told()
    {
        var manager = _gateway.Service<RoutingConfigManager>();
        await File.WriteAllTextAsync(_gateway.ConfigPath!, TestConfigs.SingleOpenAI(_upstream, route: "watched"));

        var clock = Stopwatch.StartNew();
        while (manager.Current.Version == 1 && clock.Elapsed < TimeSpan.FromSeconds(15))
        {
            await Task.Delay(50);
        }

        Assert.True(manager.Current.Routes.ContainsKey("watched"));
    }

    [Fact]
    public async Task A_stream_in_flight_survives_a_reload()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "one two three four", ChunkCount = 4, HoldBeforeLastChunk = release.Task };
        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        await using var stream = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(stream, Encoding.UTF8);
        Assert.StartsWith("data: ", await reader.ReadLineAsync());

        var result = await _gateway.EditConfigAsync(TestConfigs.SingleOpenAI(_upstream, route: "something-else"));
        Assert.True(result.Succeeded);
        release.SetResult();

        var rest = await reader.ReadToEndAsync();
        Assert.Contains("four", rest, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", rest, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_rotated_key_file_is_picked_up_without_editing_the_routing_file()
    {
        var keyFile = Path.Combine(Path.GetDirectoryName(_gateway.ConfigPath)!, "provider.key");
        await File.WriteAllTextAsync(keyFile, "sk-first-key-000000000001");
        var result = await _gateway.EditConfigAsync($$"""
            providers:
              - { name: upstream, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "file:{{keyFile}}" }
            deployments:
              - { name: primary, provider: upstream, model: m }
            routes:
              - { name: gpt-4o-mini, targets: [primary] }
            """);
        Assert.True(result.Succeeded);
        using (await _gateway.PostAsync("v1/chat/completions", Chat("gpt-4o-mini")))
        {
        }

        await File.WriteAllTextAsync(keyFile, "sk-second-key-00000000002");
        var manager = _gateway.Service<RoutingConfigManager>();
        var clock = Stopwatch.StartNew();
        while (manager.Current.Version == 2 && clock.Elapsed < TimeSpan.FromSeconds(15))
        {
            await Task.Delay(50);
        }

        using (await _gateway.PostAsync("v1/chat/completions", Chat("gpt-4o-mini")))
        {
        }

        Assert.Equal(["Bearer sk-first-key-000000000001", "Bearer sk-second-key-00000000002"], _upstream.Requests.Select(r => r.Headers["authorization"]));
    }

    private static string Chat(string model) => $$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]}""";
}
