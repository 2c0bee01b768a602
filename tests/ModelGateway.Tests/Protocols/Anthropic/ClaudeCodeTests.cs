using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Anthropic.Models.Messages;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Protocols.Anthropic;

/// <summary>
/// Claude Code, as it really calls: the real agent run headless (<c>claude -p</c>) through the gateway with a
/// gateway key in <c>x-api-key</c>, and the request it sends (captured once from 2.1.328, in
/// <c>claude-code-request.json</c>) replayed against every deployment kind. Nothing it sends may be a 400.
/// </summary>
public sealed class ClaudeCodeTests : IAsyncLifetime
{
    private const string MasterKey = "mk-claude-code-tests-0123456789";
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);
    private FakeUpstreamServer _upstream = null!;
    private ScriptedOpenAIUpstream _scripted = null!;
    private GatewayHost _gateway = null!;
    private string _key = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Hello from the fake.", ChunkCount = 4 };
        _scripted = await ScriptedOpenAIUpstream.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: anthropic, kind: anthropic, baseUrl: "{{_upstream.AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: openai, kind: openai-compatible, baseUrl: "{{_upstream.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: scripted, kind: openai-compatible, baseUrl: "{{_scripted.BaseUrl}}" }
              - { name: sim, kind: simulated, simulate: { ttft: 1ms, tokensPerSecond: 5000, outputTokens: 8 } }
            deployments:
              - { name: claude, provider: anthropic, model: claude-opus-5-5 }
              - { name: gpt, provider: openai, model: gpt-4o, contextWindow: 128000, maxOutputTokens: 16384, capabilities: [chat, tools, vision, json_schema] }
              - { name: scripted, provider: scripted, model: scripted-model, contextWindow: 200000, capabilities: [chat, tools, vision] }
              - { name: sim, provider: sim, model: sim-model, capabilities: [chat, tools, vision] }
            routes:
              - { name: claude, targets: [claude] }
              - { name: gpt, targets: [gpt] }
              - { name: agent, targets: [scripted] }
              - { name: sim, targets: [sim] }
            """, new Dictionary<string, string?> { ["Auth:Mode"] = "keys", ["Admin:MasterKey"] = MasterKey });
        using var create = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json("""{"name":"claude-code"}""") };
        create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var created = await _gateway.Http.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        _key = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _scripted.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task Claude_Code_runs_a_headless_turn_with_a_tool_round_trip_through_a_translated_deployment()
    {
        var workspace = Directory.CreateTempSubdirectory("claude-code-work-").FullName;
        var note = Path.Combine(workspace, "note.txt");
        await File.WriteAllTextAsync(note, "the launch code is tangerine\n");

        // The model reads the note, then answers from the tool result: whatever else Claude Code asks gets plain text.
        _scripted.Responder = request =>
        {
            var messages = request["messages"]!.AsArray();
            if (request["tools"] is null || request["stream"]?.GetValue<bool>() != true)
            {
                return null;
            }

            var result = messages.LastOrDefault(m => m!["role"]!.GetValue<string>() == "tool");
            if (result is null)
            {
                return ScriptedOpenAIUpstream.ParallelToolCalls(("call_read", "Read", JsonSerializer.Serialize(new { file_path = note })));
            }

            var said = result["content"]!.ToString().Contains("tangerine", StringComparison.Ordinal) ? "The note says the launch code is tangerine." : "I could not read the note.";
            return ScriptedOpenAIUpstream.Chunk($$"""{"role":"assistant","content":{{JsonSerializer.Serialize(said)}}}""")
                + ScriptedOpenAIUpstream.Chunk("{}", "stop") + ScriptedOpenAIUpstream.Usage(900, 12) + ScriptedOpenAIUpstream.Done;
        };

        var (exitCode, output, errors) = await RunClaudeAsync(workspace, "What does note.txt say? Read it.", "--allowedTools", "Read");

        Assert.True(exitCode == 0, $"claude exited with {exitCode}: {errors}\n{output}");
        Assert.Contains("The note says the launch code is tangerine.", output, StringComparison.Ordinal);
        var turns = _scripted.Requests.Where(r => r["tools"] is not null).ToList();
        Assert.True(turns.Count >= 2, $"{turns.Count} agent turns reached the deployment");
        var toolTurn = turns.Last()["messages"]!.AsArray();
        Assert.Contains(toolTurn, m => m!["role"]!.GetValue<string>() == "tool" && m["tool_call_id"]!.GetValue<string>() == "call_read");
        Assert.Contains(toolTurn, m => m!["role"]!.GetValue<string>() == "assistant" && m["tool_calls"]?[0]?["function"]?["name"]?.GetValue<string>() == "Read");
        Assert.DoesNotContain(TestConfigs.ProviderKey, _gateway.Logs.All, StringComparison.Ordinal);
        Directory.Delete(workspace, recursive: true);
    }

    [Theory]
    [InlineData("gpt")]
    [InlineData("sim")]
    public async Task Claude_Codes_request_is_served_by_translated_deployments_with_what_has_no_equivalent_dropped_and_named(string route)
    {
        var dropped = new List<string>();
        using var listener = ListenForDropped(dropped);

        var (response, events) = await ReplayAsync(route);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("message_stop", events[^1].Name);
        var named = response.Headers.GetValues("x-modelgateway-dropped").Single().Split(',');
        Assert.Superset(new HashSet<string> { "context_management", "output_config.effort", "thinking", "tools.defer_loading", "metadata.user_id" }, named.ToHashSet());
        Assert.Contains("context_management", dropped);
        Assert.Contains("output_config.effort", dropped);
    }

    [Fact]
    public async Task Claude_Codes_request_reaches_an_openai_deployment_mapped_and_clamped()
    {
        var (response, _) = await ReplayAsync("gpt");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = Assert.Single(_upstream.Requests).Json!;
        Assert.Equal(16384, body["max_tokens"]!.GetValue<int>());
        Assert.Null(body["reasoning_effort"]);
        Assert.Equal(12, body["tools"]!.AsArray().Count);
        var roles = body["messages"]!.AsArray().Select(m => m!["role"]!.GetValue<string>()).ToList();
        Assert.Equal(["system", "user", "system"], roles);
        Assert.Contains("Claude agent", body["messages"]![0]!["content"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Claude_Codes_request_passes_through_to_anthropic_with_its_betas()
    {
        var fixture = Fixture();

        var (response, events) = await ReplayAsync("claude");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("message_start", events[0].Name);
        Assert.False(response.Headers.Contains("x-modelgateway-dropped"));
        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal("claude-opus-5-5", seen.Model);
        Assert.Equal(fixture["headers"]!["anthropic-beta"]!.GetValue<string>(), seen.Headers["anthropic-beta"]);
        Assert.Equal("2023-06-01", seen.Headers["anthropic-version"]);
        Assert.Equal("adaptive", seen.Json!["thinking"]!["type"]!.GetValue<string>());
        Assert.Equal(128000, seen.Json!["max_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Anthropic_clients_authenticate_with_x_api_key_and_refusals_are_anthropic_401s()
    {
        var message = await AnthropicClients.For(_gateway, _key).Messages.Create(new MessageCreateParams { Model = "gpt", MaxTokens = 100, Messages = [new UserMessageParam("Hi")] });
        using var missing = await _gateway.PostAsync("v1/messages", """{"model":"gpt","max_tokens":10,"messages":[{"role":"user","content":"Hi"}]}""");
        using var wrong = await _gateway.PostAsync("v1/messages", """{"model":"gpt","max_tokens":10,"messages":[{"role":"user","content":"Hi"}]}""", headers: h => h.Add("x-api-key", "sk-gw-wrong"));
        using var openAI = await _gateway.PostAsync("v1/chat/completions", """{"model":"gpt","messages":[{"role":"user","content":"Hi"}]}""", headers: h => h.Add("x-api-key", _key));

        Assert.Equal("end_turn", message.StopReason?.Raw());
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        var error = await AnthropicClients.ErrorAsync(missing);
        Assert.Equal("authentication_error", error.GetProperty("type").GetString());
        Assert.StartsWith("x-api-key header is required", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("authentication_error", (await AnthropicClients.ErrorAsync(wrong)).GetProperty("type").GetString());

        // The key header works on OpenAI's paths too; the client's key never goes upstream.
        Assert.Equal(HttpStatusCode.OK, openAI.StatusCode);
        Assert.All(_upstream.Requests, r => Assert.NotEqual(_key, r.Headers.GetValueOrDefault("x-api-key")));
    }

    private static JsonNode Fixture()
        => JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryRoot(), "tests", "ModelGateway.Tests", "Protocols", "Anthropic", "claude-code-request.json")))!;

    private async Task<(HttpResponseMessage Response, List<FakeUpstream.SseEvent> Events)> ReplayAsync(string route)
    {
        var fixture = Fixture();
        var body = fixture["body"]!.AsObject();
        body["model"] = route;
        using var request = new HttpRequestMessage(HttpMethod.Post, fixture["path"]!.GetValue<string>().TrimStart('/')) { Content = GatewayHost.Json(body.ToJsonString()) };
        foreach (var (name, value) in fixture["headers"]!.AsObject())
        {
            request.Headers.TryAddWithoutValidation(name, value!.GetValue<string>());
        }

        request.Headers.Add("x-api-key", _key);
        var response = await _gateway.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        using var reader = await FakeUpstream.NamedSseReader.OpenAsync(response);
        return (response, await reader.ReadAllAsync());
    }

    private static MeterListener ListenForDropped(List<string> fields)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == "modelgateway.translation.dropped")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "field")
                {
                    lock (fields)
                    {
                        fields.Add((string)tag.Value!);
                    }
                }
            }
        });
        listener.Start();
        return listener;
    }

    private async Task<(int ExitCode, string Output, string Errors)> RunClaudeAsync(string workspace, string prompt, params string[] arguments)
    {
        var folder = Path.Combine(RepositoryRoot(), "tests", "ModelGateway.Tests", "Protocols", "Anthropic", "claude-code");
        var claude = Path.Combine(folder, "node_modules", ".bin", "claude");
        Assert.True(File.Exists(claude), $"Claude Code is not installed: run `npm ci --engine-strict=false` in {folder} (test.sh does).");
        var home = Directory.CreateTempSubdirectory("claude-code-home-").FullName;
        var start = new ProcessStartInfo(claude)
        {
            WorkingDirectory = workspace,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-p");
        start.ArgumentList.Add(prompt);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // Offline, pointed at the gateway, and away from any real Anthropic account of the machine.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("ANTHROPIC_", StringComparison.Ordinal) || k.StartsWith("CLAUDE", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }

        start.Environment["HOME"] = home;
        start.Environment["ANTHROPIC_BASE_URL"] = _gateway.BaseAddress.ToString().TrimEnd('/');
        start.Environment["ANTHROPIC_API_KEY"] = _key;
        start.Environment["ANTHROPIC_MODEL"] = "agent";
        start.Environment["ANTHROPIC_SMALL_FAST_MODEL"] = "agent";
        start.Environment["ANTHROPIC_DEFAULT_HAIKU_MODEL"] = "agent";
        start.Environment["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1";
        start.Environment["DISABLE_AUTOUPDATER"] = "1";
        start.Environment["NO_PROXY"] = "127.0.0.1,localhost";

        using var process = Process.Start(start) ?? throw new InvalidOperationException("claude did not start");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(Limit))
        {
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"claude -p did not finish within {Limit}: {await stderr}");
            }
        }

        try
        {
            Directory.Delete(home, recursive: true);
        }
        catch (IOException)
        {
            // Claude Code may still hold a file for a moment; the OS cleans temp folders.
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ModelGateway.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (ModelGateway.sln) was not found above " + AppContext.BaseDirectory);
    }
}
