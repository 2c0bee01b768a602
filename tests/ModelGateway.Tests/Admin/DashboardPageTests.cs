using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using static Microsoft.Playwright.Assertions;

namespace ModelGateway.Tests.Admin;

/// <summary>
/// The live ops page in a real headless Chromium against the real gateway and a fake upstream: what
/// it shows, that it follows the gateway without reloading, and that it is behind the master key.
/// Every test leaves a screenshot in <c>TestResults/screenshots/</c>.
/// </summary>
public sealed partial class DashboardPageTests(ChromiumFixture chromium) : IClassFixture<ChromiumFixture>, IAsyncLifetime
{
    private const string MasterKey = "mk-ops-page-test-5e1f0a";
    private const string Llama = "llama-3.1-8b@vllm";
    private const string AzureMini = "gpt-4o-mini@azure";
    private const string OpenAIMini = "gpt-4o-mini@openai";
    private const string OpenAI4o = "gpt-4o@openai";

    private FakeUpstreamServer _upstream = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();

        // Each provider answers at its own pace and with realistic token counts, so latencies and spend differ per row.
        _upstream.SetBehaviorForModel("llama-model", Answer(firstChunkMs: 60));
        _upstream.SetBehaviorForModel("azure-mini", Answer(firstChunkMs: 140));
        _upstream.SetBehaviorForModel("openai-mini", Answer(firstChunkMs: 220));
        _upstream.SetBehaviorForModel("openai-4o", Answer(firstChunkMs: 380));
    }

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    private static UpstreamBehavior Answer(int firstChunkMs, Task? hold = null) => new()
    {
        FirstChunkDelay = TimeSpan.FromMilliseconds(firstChunkMs),
        ChunkDelay = TimeSpan.FromMilliseconds(10),
        PromptTokens = 1200,
        CompletionTokens = 350,
        HoldBeforeLastChunk = hold,
    };

    // Three providers in the three tiers; the two gpt-4o-mini deployments back each other up, and a
    // circuit opens after two failures in a row and stays open long enough to be seen.
    private string Config(string extraRoute = "") => $$"""
        defaults:
          circuitBreaker: { consecutiveFailures: 2, minimumThroughput: 1000, breakDuration: 30s }
        providers:
          - { name: vllm-gpu, kind: openai-compatible, tier: iaas, region: eu-west, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
          - { name: azure-eastus, kind: openai-compatible, tier: paas, region: us-east, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
          - { name: openai, kind: openai-compatible, tier: saas, region: us, baseUrl: "{{_upstream.OpenAIBaseUrl}}" }
        deployments:
          - { name: {{Llama}}, provider: vllm-gpu, model: llama-model, capacity: 8, pricing: { perHour: 1.20 } }
          - { name: {{AzureMini}}, provider: azure-eastus, model: azure-mini, pricing: { input: 0.165, output: 0.66 } }
          - { name: {{OpenAIMini}}, provider: openai, model: openai-mini, pricing: { input: 0.15, output: 0.60 } }
          - { name: {{OpenAI4o}}, provider: openai, model: openai-4o, pricing: { input: 2.50, output: 10.00 } }
        routes:
          - { name: llama, targets: [{{Llama}}] }
          - { name: gpt-4o-mini, targets: [{{AzureMini}}, {{OpenAIMini}}] }
          - { name: gpt-4o, targets: [{{OpenAI4o}}] }
          - { name: chat-fast, targets: [{{Llama}}, {{AzureMini}}, {{OpenAIMini}}], slo: { ttft: 800ms, percentile: 90 } }
        {{extraRoute}}
        """;

    [Fact]
    public async Task Shows_every_deployment_with_its_provider_and_tier_and_the_config_version()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());

        await WithPageAsync(gateway, nameof(Shows_every_deployment_with_its_provider_and_tier_and_the_config_version), async page =>
        {
            await Expect(page.Locator("#config-version")).ToHaveTextAsync("v1");
            foreach (var (name, provider, tier) in new[] { (Llama, "vllm-gpu", "IaaS"), (AzureMini, "azure-eastus", "PaaS"), (OpenAIMini, "openai", "SaaS"), (OpenAI4o, "openai", "SaaS") })
            {
                var row = Row(page, name);
                await Expect(Cell(row, "name")).ToContainTextAsync(name);
                await Expect(Cell(row, "provider")).ToContainTextAsync(provider);
                await Expect(Cell(row, "tier")).ToHaveTextAsync(tier);
                await Expect(Cell(row, "health")).ToHaveTextAsync("healthy");
                await Expect(Cell(row, "circuit")).ToHaveTextAsync("closed");

                // No traffic yet: latencies are unknown and say so instead of showing 0 or "null".
                await Expect(Cell(row, "latency_p50")).ToHaveTextAsync("–");
                await Expect(Cell(row, "ttft_p95")).ToHaveTextAsync("–");
            }

            await Expect(Cell(Row(page, Llama), "in_flight")).ToHaveTextAsync("0 / 8");
            await Expect(Row(page, "chat-fast", "routes")).ToContainTextAsync("p90 ttft ≤ 800ms");
            await Expect(page.Locator("#status-badge")).ToHaveTextAsync("Operational");
        });
    }

    [Fact]
    public async Task After_traffic_the_deployment_that_served_shows_its_rate_and_latencies()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());

        await WithPageAsync(gateway, nameof(After_traffic_the_deployment_that_served_shows_its_rate_and_latencies), async page =>
        {
            await Expect(Cell(Row(page, AzureMini), "rps")).ToHaveTextAsync("0");

            // Azure is first in the route, so it serves every request; the page picks that up on its own.
            await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => SendAsync(gateway, "gpt-4o-mini")));

            var served = Row(page, AzureMini);
            await Expect(Cell(served, "rps")).ToHaveTextAsync(NonZeroRate());
            foreach (var column in new[] { "latency_p50", "latency_p95", "ttft_p50", "ttft_p95" })
            {
                await Expect(Cell(served, column)).ToHaveTextAsync(Duration());
            }

            await Expect(page.Locator("#total-rps")).ToHaveTextAsync(NonZeroRate());
            await Expect(Cell(Row(page, OpenAIMini), "latency_p50")).ToHaveTextAsync("–");
            await Expect(Cell(Row(page, OpenAIMini), "rps")).ToHaveTextAsync("0");
        });
    }

    [Fact]
    public async Task A_deployment_whose_circuit_opens_turns_down_on_the_open_page_without_a_reload()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());

        // Some traffic first, and three long requests holding GPU slots, so the page looks like a working day.
        // (Sequential per route: the GPU's capacity of 8 is a hard limit for the llama route, which has no spill-over.)
        await Task.WhenAll(TrafficAsync(gateway, "llama", 5), TrafficAsync(gateway, "chat-fast", 3), TrafficAsync(gateway, "gpt-4o", 4));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _upstream.SetBehaviorForModel("llama-model", Answer(firstChunkMs: 60, hold: release.Task));
        var held = Enumerable.Range(0, 3).Select(_ => SendAsync(gateway, "llama")).ToArray();

        try
        {
            await WithPageAsync(gateway, nameof(A_deployment_whose_circuit_opens_turns_down_on_the_open_page_without_a_reload), async page =>
            {
                var azure = Row(page, AzureMini);
                await Expect(Cell(azure, "health")).ToHaveTextAsync("healthy");
                await Expect(Cell(Row(page, Llama), "in_flight")).ToHaveTextAsync("3 / 8");
                await page.EvaluateAsync("() => { window.__sameDocument = true; }");

                // Azure fails every call: after two its circuit opens, and the route fails over to OpenAI meanwhile.
                // (The breaker's "consecutive failures" rule means every call in its sampling window failed, so
                // Azure serves nothing successfully before this in this test.)
                _upstream.SetBehaviorForModel("azure-mini", new UpstreamBehavior { StatusCode = 500 });
                await TrafficAsync(gateway, "gpt-4o-mini", 6);

                await Expect(Cell(azure, "health")).ToHaveTextAsync("down");
                await Expect(Cell(azure, "circuit")).ToHaveTextAsync(new Regex(@"^open · \d+ s$"));
                await Expect(azure).ToHaveAttributeAsync("data-health", "down");
                await Expect(Cell(azure, "errors")).ToHaveTextAsync("100%");
                await Expect(page.Locator("#status-badge")).ToHaveTextAsync("Degraded");
                await Expect(page.Locator("#status-detail")).ToContainTextAsync("1 deployment down");
                await Expect(Cell(Row(page, OpenAIMini), "health")).ToHaveTextAsync("healthy");
                await Expect(Cell(Row(page, OpenAIMini), "rps")).ToHaveTextAsync(NonZeroRate());
                Assert.True(await page.EvaluateAsync<bool>("() => window.__sameDocument === true"), "the page reloaded instead of updating in place");
            });
        }
        finally
        {
            release.TrySetResult();
            await Task.WhenAll(held);
        }
    }

    [Fact]
    public async Task A_refused_config_edit_is_shown_with_its_errors_and_the_version_stays()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());

        await WithPageAsync(gateway, nameof(A_refused_config_edit_is_shown_with_its_errors_and_the_version_stays), async page =>
        {
            await Expect(page.Locator("#config-version")).ToHaveTextAsync("v1");
            await Expect(page.Locator("#reload-refused")).ToBeHiddenAsync();

            var refused = await gateway.EditConfigAsync(Config("""
                  - { name: broken, targets: [ghost] }
                  - { name: broken-too, strategy: cheapest, targets: [gpt-4o-mini@azure] }
                """));
            Assert.False(refused.Succeeded);
            Assert.Equal(2, refused.Errors.Count);

            var banner = page.Locator("#reload-refused");
            await Expect(banner).ToBeVisibleAsync();
            await Expect(banner).ToContainTextAsync("still serving v1");
            await Expect(page.Locator("#reload-refused-errors li")).ToHaveTextAsync(refused.Errors.Select(e => e.ToString()).ToArray());
            await Expect(page.Locator("#config-reload")).ToHaveTextAsync("edit refused");
            await Expect(page.Locator("#config-version")).ToHaveTextAsync("v1");
            await Expect(page.Locator("#status-badge")).ToHaveTextAsync("Needs attention");
            await Expect(page.Locator("#status-detail")).ToContainTextAsync("last config edit refused");
            await SaveScreenshotAsync(page, "A_refused_config_edit_banner");

            // A good edit clears the banner and bumps the version, still without a reload.
            var applied = await gateway.EditConfigAsync(Config("  - { name: extra, targets: [llama-3.1-8b@vllm] }"));
            Assert.True(applied.Succeeded);
            await Expect(page.Locator("#config-version")).ToHaveTextAsync("v2");
            await Expect(banner).ToBeHiddenAsync();
            await Expect(page.Locator("#config-reload")).ToHaveTextAsync("applied");
            await Expect(Row(page, "extra", "routes")).ToBeVisibleAsync();
        });
    }

    [Fact]
    public async Task When_polls_fail_the_page_says_the_connection_is_lost_and_recovers_by_itself()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());

        await WithPageAsync(gateway, nameof(When_polls_fail_the_page_says_the_connection_is_lost_and_recovers_by_itself), async page =>
        {
            await Expect(page.Locator("#status-badge")).ToHaveTextAsync("Operational");
            await Expect(page.Locator("#connection")).ToBeHiddenAsync();

            // The gateway becomes unreachable from the browser: every poll fails at the network level.
            await page.Context.RouteAsync("**/dashboard/api/state", route => route.AbortAsync());
            await Expect(page.Locator("#connection")).ToBeVisibleAsync();
            await Expect(page.Locator("#status-badge")).ToHaveTextAsync("Connection lost");
            await Expect(page.Locator("#updated")).ToContainTextAsync("Last update");
            await Expect(Cell(Row(page, Llama), "health")).ToHaveTextAsync("healthy");
            await SaveScreenshotAsync(page, "When_polls_fail_the_connection_is_lost");

            await page.Context.UnrouteAsync("**/dashboard/api/state");
            await Expect(page.Locator("#connection")).ToBeHiddenAsync();
            await Expect(page.Locator("#status-badge")).ToHaveTextAsync("Operational");
        });
    }

    [Fact]
    public async Task Null_missing_and_unknown_values_read_as_dashes_without_breaking_the_page()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());

        await WithPageAsync(gateway, nameof(Null_missing_and_unknown_values_read_as_dashes_without_breaking_the_page), async page =>
        {
            await Expect(Cell(Row(page, Llama), "rps")).ToHaveTextAsync("0");

            // The gateway's real answer with holes punched in it, as an older or newer gateway might send.
            await page.Context.RouteAsync("**/dashboard/api/state", async route =>
            {
                var response = await route.FetchAsync();
                var state = JsonNode.Parse(await response.TextAsync())!.AsObject();
                var llama = state["deployments"]![0]!.AsObject();
                foreach (var field in new[] { "requests_per_second", "error_rate", "in_flight", "capacity", "spend_today_usd", "requests_today", "circuit_open_seconds" })
                {
                    llama[field] = null;
                }

                llama.Remove("region");
                llama["tier"] = "onprem";
                llama["health"] = "mystery";
                state["totals"] = new JsonObject();
                state.Remove("state");
                state["routes"]![0]!["strategy"] = null;
                state["config"]!["last_reload"]!["warnings"] = new JsonArray("providers[0].apiKey: a literal secret in the routing file");
                await route.FulfillAsync(new RouteFulfillOptions { Response = response, Body = state.ToJsonString() });
            });

            var row = Row(page, Llama);
            await Expect(Cell(row, "rps")).ToHaveTextAsync("–");
            foreach (var column in new[] { "errors", "in_flight", "spend" })
            {
                await Expect(Cell(row, column)).ToHaveTextAsync(new Regex("^–"));
            }

            await Expect(Cell(row, "name")).ToHaveTextAsync(Llama + "llama-model");
            await Expect(Cell(row, "tier")).ToHaveTextAsync("onprem");
            await Expect(Cell(row, "health")).ToHaveTextAsync("mystery");
            await Expect(Cell(Row(page, "llama", "routes"), "strategy")).ToHaveTextAsync("–");
            foreach (var total in new[] { "#total-rps", "#total-errors", "#total-inflight", "#total-spend" })
            {
                await Expect(page.Locator(total)).ToHaveTextAsync("–");
            }

            await Expect(page.Locator("#store")).ToHaveTextAsync("unknown");
            await Expect(page.Locator("#config-reload")).ToHaveTextAsync("applied with 1 warning");
            await Expect(Cell(Row(page, AzureMini), "health")).ToHaveTextAsync("healthy");
        });
    }

    [Fact]
    public async Task With_keys_the_page_and_its_api_need_the_master_key_over_basic_auth()
    {
        await using var gateway = await GatewayHost.StartAsync(Config(), new Dictionary<string, string?>
        {
            ["Auth:Mode"] = "keys",
            ["Admin:MasterKey"] = MasterKey,
        });

        foreach (var path in new[] { "dashboard", "dashboard/api/state" })
        {
            using var anonymous = await gateway.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            Assert.Equal("Basic", anonymous.Headers.WwwAuthenticate.Single().Scheme);

            using var wrong = new HttpRequestMessage(HttpMethod.Get, path);
            wrong.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("oncall:not-the-key")));
            using var refused = await gateway.Http.SendAsync(wrong);
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        // A browser without credentials gets the 401 (headless, it cannot show the login prompt, so the navigation fails).
        await using (var anonymous = await chromium.Browser.NewContextAsync())
        {
            var page = await anonymous.NewPageAsync();
            var statuses = new List<int>();
            page.Response += (_, response) => statuses.Add(response.Status);
            await Record.ExceptionAsync(() => page.GotoAsync(new Uri(gateway.BaseAddress, "dashboard").ToString()));
            Assert.Equal([401], statuses);
            var api = await anonymous.APIRequest.GetAsync(new Uri(gateway.BaseAddress, "dashboard/api/state").ToString());
            Assert.Equal(401, api.Status);
        }

        // With the master key as the Basic password, the page loads and its polls are let through too.
        var credentials = new HttpCredentials { Username = "oncall", Password = MasterKey };
        await WithPageAsync(gateway, nameof(With_keys_the_page_and_its_api_need_the_master_key_over_basic_auth), async page =>
        {
            await Expect(page.Locator("#config-version")).ToHaveTextAsync("v1");
            await Expect(page.Locator("#auth")).ToHaveTextAsync("API keys");
            await Expect(Cell(Row(page, AzureMini), "health")).ToHaveTextAsync("healthy");
            await Expect(page.Locator("#status-badge")).ToHaveTextAsync("Operational");
            await Expect(page.Locator("#updated")).ToContainTextAsync("Updated");
        }, credentials);
    }

    /// <summary>
    /// Opens the page in a fresh browser context, runs <paramref name="body"/>, and always saves a
    /// screenshot (a failing test's is the most useful one). Script errors on the page (CSP violations
    /// included) fail the test; failed loads do not, since some tests cut the network on purpose.
    /// </summary>
    private async Task WithPageAsync(GatewayHost gateway, string name, Func<IPage, Task> body, HttpCredentials? credentials = null)
    {
        await using var context = await chromium.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            ViewportSize = new ViewportSize { Width = 1440, Height = 900 },
            HttpCredentials = credentials,
            Locale = "en-US",
            TimezoneId = "UTC",
        });
        var page = await context.NewPageAsync();
        var problems = new List<string>();
        page.PageError += (_, error) => problems.Add($"page error: {error}");
        page.Console += (_, message) =>
        {
            if (message.Type == "error" && !message.Text.StartsWith("Failed to load resource", StringComparison.Ordinal))
            {
                problems.Add($"console error: {message.Text}");
            }
        };

        try
        {
            var response = await page.GotoAsync(new Uri(gateway.BaseAddress, "dashboard").ToString());
            Assert.Equal((int)HttpStatusCode.OK, response!.Status);
            await body(page);
        }
        finally
        {
            await SaveScreenshotAsync(page, name);
        }

        Assert.Empty(problems);
    }

    private static async Task SaveScreenshotAsync(IPage page, string name) =>
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ChromiumFixture.ScreenshotDirectory, name + ".png"), FullPage = true });

    private static ILocator Row(IPage page, string key, string table = "deployments") => page.Locator($"#{table} tbody tr[data-key=\"{key}\"]");

    private static ILocator Cell(ILocator row, string column) => row.Locator($"[data-col=\"{column}\"]");

    private static async Task TrafficAsync(GatewayHost gateway, string route, int requests)
    {
        for (var i = 0; i < requests; i++)
        {
            await SendAsync(gateway, route);
        }
    }

    private static async Task SendAsync(GatewayHost gateway, string route)
    {
        using var response = await gateway.PostAsync("v1/chat/completions", $$"""{"model":"{{route}}","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}""");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{route}: {(int)response.StatusCode} {body}");
    }

    // "0.10", "<0.01", "2.4": anything but zero or a dash.
    [GeneratedRegex(@"^(?:<0\.01|0\.\d*[1-9]\d*|[1-9][\d,]*(?:\.\d+)?)$")]
    private static partial Regex NonZeroRate();

    // "143 ms", "1.25 s".
    [GeneratedRegex(@"^\d[\d.,]* m?s$")]
    private static partial Regex Duration();
}
