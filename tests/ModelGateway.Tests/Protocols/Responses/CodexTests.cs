using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Protocols.Responses;

/// <summary>
/// The real Codex CLI (<c>codex exec</c>, headless, offline), configured with the gateway as a custom
/// model provider speaking the Responses API, runs one turn against a translated deployment: the model
/// asks for a shell command, Codex runs it, and the command's output goes back through the gateway in
/// Codex's next request. <c>test.sh</c> installs the CLI with <c>npm ci</c> in <c>codex/</c> beside this file.
/// </summary>
public sealed class CodexTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(90);
    private readonly ConcurrentQueue<JsonObject> _sent = new();
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;
    private string _home = null!;
    private string _work = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _gateway = await GatewayHost.StartAsync(ResponsesRoutes.Yaml(_upstream), configure: builder => builder.Services.AddSingleton<IStartupFilter>(new RecordResponsesBodies(_sent)));
        _home = Directory.CreateTempSubdirectory("modelgateway-codex-home-").FullName;
        _work = Directory.CreateTempSubdirectory("modelgateway-codex-work-").FullName;
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
        foreach (var folder in new[] { _home, _work })
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    [Theory]
    [InlineData("claude", "claude-sonnet-4-5", UpstreamWire.Anthropic)]
    [InlineData("compat", "qwen3", UpstreamWire.OpenAI)]
    [InlineData("gemini", "gemini-2.5-flash", UpstreamWire.Gemini)]
    public async Task Codex_runs_a_shell_command_the_model_asked_for_and_answers_through_a_translated_deployment(string route, string upstreamModel, UpstreamWire wire)
    {
        const string Marker = "codex-ran-this-through-the-gateway";
        var arguments = $$"""{"cmd":"echo {{Marker}}"}""";

        // The fake's OpenAI wire calls the first tool offered, which is Codex's exec_command (asserted below).
        _upstream.Enqueue(upstreamModel, wire == UpstreamWire.OpenAI
            ? new UpstreamBehavior { RespondWithToolCall = true, ToolArguments = arguments }
            : new UpstreamBehavior { ToolCalls = [new("exec_command", arguments)] });
        _upstream.Enqueue(upstreamModel, new UpstreamBehavior { Content = "The command printed the marker." });

        var (exitCode, events, stderr) = await RunCodexAsync(route, "Run echo with the marker and tell me what it printed.");

        Assert.True(exitCode == 0, $"codex exec exited with {exitCode}: {stderr}");

        // Codex ran the command the model asked for and showed the answer that followed.
        var command = events.Single(e => e["type"]!.GetValue<string>() == "item.completed" && e["item"]!["type"]!.GetValue<string>() == "command_execution")["item"]!;
        Assert.Contains(Marker, command["aggregated_output"]!.GetValue<string>(), StringComparison.Ordinal);
        var message = events.Last(e => e["type"]!.GetValue<string>() == "item.completed" && e["item"]!["type"]!.GetValue<string>() == "agent_message")["item"]!;
        Assert.Equal("The command printed the marker.", message["text"]!.GetValue<string>());
        Assert.Contains(events, e => e["type"]!.GetValue<string>() == "turn.completed");

        // What Codex sent: always streamed, nothing stored, the whole history each time (no previous_response_id).
        var sent = _sent.ToList();
        Assert.Equal(2, sent.Count);
        foreach (var body in sent)
        {
            Assert.Equal(route, body["model"]!.GetValue<string>());
            Assert.True(body["stream"]!.GetValue<bool>());
            Assert.False(body["store"]!.GetValue<bool>());
            Assert.Null(body["previous_response_id"]);
        }

        // Codex's own shape: developer messages for its instructions, two user messages in a row (environment,
        // then prompt), a namespace tool and web_search beside its functions, a prompt cache key, encrypted reasoning.
        var first = sent[0];
        var items = first["input"]!.AsArray().Select(i => (Type: i!["type"]?.GetValue<string>(), Role: i["role"]?.GetValue<string>())).ToList();
        Assert.Contains(("message", "developer"), items);
        Assert.Equal([("message", "user"), ("message", "user")], items.Where(i => i.Role != "developer"));
        var toolTypes = first["tools"]!.AsArray().Select(t => t!["type"]!.GetValue<string>()).ToList();
        Assert.Contains("namespace", toolTypes);
        Assert.Contains("web_search", toolTypes);
        Assert.Contains("function", toolTypes);
        Assert.False(string.IsNullOrEmpty(first["prompt_cache_key"]!.GetValue<string>()));
        Assert.Contains("reasoning.encrypted_content", first["include"]!.AsArray().Select(i => i!.GetValue<string>()));

        var history = sent[1]["input"]!.AsArray();
        var call = history.Single(i => i!["type"]!.GetValue<string>() == "function_call")!;
        var output = history.Single(i => i!["type"]!.GetValue<string>() == "function_call_output")!;
        Assert.Equal("exec_command", call["name"]!.GetValue<string>());
        Assert.Equal(call["call_id"]!.GetValue<string>(), output["call_id"]!.GetValue<string>());
        Assert.Contains(Marker, output["output"]!.ToJsonString(), StringComparison.Ordinal);

        // The provider got both turns in its own wire, the second carrying the command's output as a tool result.
        var upstream = _upstream.Requests.Where(r => r.Wire == wire).ToList();
        Assert.Equal(2, upstream.Count);
        Assert.Contains(Marker, upstream[1].Json!.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Marker, upstream[0].Json!.ToJsonString(), StringComparison.Ordinal);

        // The built-in tools the gateway cannot run stayed behind; Codex's functions went on.
        var namespaceName = first["tools"]!.AsArray().First(t => t!["type"]!.GetValue<string>() == "namespace")!["name"]!.GetValue<string>();
        var offered = OfferedTools(upstream[0].Json!);
        Assert.Contains("exec_command", offered);
        Assert.DoesNotContain(namespaceName, offered);
        Assert.DoesNotContain("web_search", offered);
    }

    private async Task<(int ExitCode, List<JsonObject> Events, string Stderr)> RunCodexAsync(string model, string prompt)
    {
        var folder = CodexFolder();
        var codex = Path.Combine(folder, "node_modules", ".bin", "codex");
        if (!File.Exists(codex))
        {
            Assert.Fail($"The Codex CLI is not installed: run `npm ci` in {folder} (test.sh does).");
        }

        // A custom provider: the gateway's /v1, the Responses wire, the gateway key from an environment variable.
        // No retries, so a failure shows at once instead of after Codex's backoff.
        await File.WriteAllTextAsync(Path.Combine(_home, "config.toml"), $$"""
            model = "{{model}}"
            model_provider = "modelgateway"

            [model_providers.modelgateway]
            name = "ModelGateway"
            base_url = "{{new Uri(_gateway.BaseAddress, "v1")}}"
            env_key = "MODELGATEWAY_API_KEY"
            wire_api = "responses"
            request_max_retries = 0
            stream_max_retries = 0
            """);

        var start = new ProcessStartInfo(codex)
        {
            WorkingDirectory = _work,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", prompt })
        {
            start.ArgumentList.Add(argument);
        }

        // Keep Codex on this temp home and the gateway: no login, no real OpenAI key, no proxy.
        foreach (var name in new[] { "OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_API_KEY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy" })
        {
            start.Environment.Remove(name);
        }

        start.Environment["CODEX_HOME"] = _home;
        start.Environment["MODELGATEWAY_API_KEY"] = "sk-client-key-not-for-upstream";
        start.Environment["NO_PROXY"] = "127.0.0.1,localhost";

        using var process = Process.Start(start) ?? throw new InvalidOperationException("codex did not start");
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
                Assert.Fail($"codex exec did not finish within {Limit}: {await stderr}");
            }
        }

        var events = new List<JsonObject>();
        foreach (var line in (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (line.StartsWith('{') && JsonNode.Parse(line) is JsonObject e)
            {
                events.Add(e);
            }
        }

        return (process.ExitCode, events, await stderr);
    }

    // The tool names a provider request offers: Anthropic's tools[].name, OpenAI's tools[].function.name,
    // Gemini's tools[].functionDeclarations[].name.
    private static List<string> OfferedTools(JsonNode request) =>
    [
        .. request["tools"]!.AsArray().SelectMany(t => t!["functionDeclarations"] is JsonArray declarations
            ? declarations.Select(d => d!["name"]!.GetValue<string>())
            : [(t["name"] ?? t["function"]!["name"])!.GetValue<string>()]),
    ];

    private static string CodexFolder()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "tests", "ModelGateway.Tests", "Protocols", "Responses", "codex");
            if (File.Exists(Path.Combine(candidate, "package.json")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/ModelGateway.Tests/Protocols/Responses/codex was not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Keeps a copy of every <c>POST /v1/responses</c> body as the client sent it, ahead of the gateway.</summary>
    private sealed class RecordResponsesBodies(ConcurrentQueue<JsonObject> sent) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, proceed) =>
            {
                if (HttpMethods.IsPost(context.Request.Method) && context.Request.Path.Equals("/v1/responses", StringComparison.Ordinal))
                {
                    context.Request.EnableBuffering();
                    if (await JsonNode.ParseAsync(context.Request.Body) is JsonObject body)
                    {
                        sent.Enqueue(body);
                    }

                    context.Request.Body.Position = 0;
                }

                await proceed(context);
            });
            next(app);
        };
    }
}
