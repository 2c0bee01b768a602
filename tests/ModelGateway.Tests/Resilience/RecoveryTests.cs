using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;
using ModelGateway.Configuration;
using ModelGateway.FakeUpstream;
using ModelGateway.Resilience;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Resilience;

/// <summary>
/// A deployment whose circuit opened is probed back into service under the shipped defaults: it serves
/// again within seconds of recovering, and costs one cheap probe per interval while it stays down. The
/// gateway runs on a fake clock the test moves in small steps, waiting at each step until the probes
/// the step started have finished, so the times measured are the gateway's logic and not the machine's load.
/// </summary>
public sealed class RecoveryTests : IAsyncLifetime
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan RecoveryTarget = TimeSpan.FromSeconds(10);

    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private FakeUpstreamServer _primary = null!;
    private FakeUpstreamServer _fallback = null!;

    public async Task InitializeAsync()
    {
        _primary = await FakeUpstreamServer.StartAsync();
        _fallback = await FakeUpstreamServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _primary.DisposeAsync();
        await _fallback.DisposeAsync();
    }

    // Nothing about circuits or probes is set: the shipped defaults are under test.
    private string Config(string primaryProvider = "") => $$"""
        providers:
          - { name: primary, kind: openai-compatible, baseUrl: "{{_primary.OpenAIBaseUrl}}"{{primaryProvider}} }
          - { name: fallback, kind: openai-compatible, baseUrl: "{{_fallback.OpenAIBaseUrl}}" }
        deployments:
          - { name: a, provider: primary, model: a-model }
          - { name: b, provider: fallback, model: b-model }
        routes:
          - { name: chat, strategy: priority, targets: [a, b] }
        """;

    [Fact]
    public async Task A_deployment_that_recovers_after_a_minute_down_serves_again_within_10s()
    {
        await using var gateway = await GatewayHost.StartAsync(Config(), timeProvider: _clock);
        await TakeDownAsync(gateway);

        // A minute down: the break has backed off far past the target, so only a probe can bring it back in time.
        await RunAsync(gateway, TimeSpan.FromSeconds(60), requestEvery: 4);
        Assert.Equal(CircuitStatus.Open, Circuit(gateway).Status);

        _primary.DefaultBehavior = new UpstreamBehavior();
        var recovered = _clock.GetUtcNow();
        while (true)
        {
            Assert.True(_clock.GetUtcNow() - recovered < TimeSpan.FromSeconds(90), "the recovered deployment never served again");
            await StepAsync(gateway);
            if (await SendAsync(gateway) == "a")
            {
                break;
            }
        }

        var took = _clock.GetUtcNow() - recovered;
        Assert.True(took <= RecoveryTarget, $"the recovered deployment served again {took.TotalSeconds:0.##}s after recovering; the target is {RecoveryTarget.TotalSeconds}s");
        Assert.Contains(gateway.Logs.Lines, line => LogLines.Plain(line).Contains("a health probe found it serving again", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_deployment_that_stays_down_costs_at_most_one_probe_per_interval_and_its_break_backs_off()
    {
        await using var gateway = await GatewayHost.StartAsync(Config(), timeProvider: _clock);
        await TakeDownAsync(gateway);
        var calls = _primary.RequestCount;

        var down = TimeSpan.FromSeconds(60);
        await RunAsync(gateway, down, requestEvery: 4);

        var interval = ProbeSettings.Default.Interval;
        var probes = _primary.Requests.Skip(calls).Count(IsProbe);
        var realTests = _primary.Requests.Skip(calls).Count(r => !IsProbe(r));
        Assert.InRange(probes, (int)(down / (interval + ProbeSettings.Default.Jitter)) - 1, (int)(down / interval));

        // Failed probes back the break off, so real requests are almost never spent testing a dead deployment.
        Assert.InRange(realTests, 0, 1);
        Assert.Contains(gateway.Logs.Lines, line => LogLines.Plain(line).Contains("still down after a health probe: its circuit stays open for 60s", StringComparison.Ordinal));
        Assert.Equal(CircuitStatus.Open, Circuit(gateway).Status);
    }

    [Fact]
    public async Task Without_probes_the_break_starts_short_and_doubles_while_the_deployment_stays_down()
    {
        await using var gateway = await GatewayHost.StartAsync(Config(", probe: { enabled: false }"), timeProvider: _clock);
        await TakeDownAsync(gateway);
        var calls = _primary.RequestCount;
        var opened = _clock.GetUtcNow();

        // Traffic at every step: each break ends with one real request testing recovery (half-open).
        var tests = new List<TimeSpan>();
        while (tests.Count < 4)
        {
            await StepAsync(gateway);
            await SendAsync(gateway);
            if (_primary.RequestCount > calls + tests.Count)
            {
                tests.Add(_clock.GetUtcNow() - opened);
            }
        }

        // Breaks of 5s, 10s, 20s, 40s: each test comes one break after the previous one failed.
        var expected = new[] { 5, 15, 35, 75 };
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.InRange(tests[i].TotalSeconds, expected[i], expected[i] + 1);
        }

        Assert.Equal(calls + 4, _primary.RequestCount);
    }

    private static bool IsProbe(RecordedRequest request) => request.Json?["max_tokens"]?.GetValue<int>() == 1;

    private static DeploymentCircuit Circuit(GatewayHost gateway) => gateway.Service<RoutingConfigManager>().Current.Deployments["a"].State.Circuit;

    // The primary fails every call; five in a row open its circuit (the shipped consecutiveFailures), none of them lost.
    private async Task TakeDownAsync(GatewayHost gateway)
    {
        _primary.DefaultBehavior = new UpstreamBehavior { StatusCode = 503 };
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("b", await SendAsync(gateway));
        }

        Assert.Equal(5, _primary.RequestCount);
        Assert.Equal(CircuitStatus.Open, Circuit(gateway).Status);
    }

    private async Task RunAsync(GatewayHost gateway, TimeSpan duration, int requestEvery)
    {
        var end = _clock.GetUtcNow() + duration;
        for (var step = 1; _clock.GetUtcNow() < end; step++)
        {
            await StepAsync(gateway);
            if (step % requestEvery == 0)
            {
                Assert.Equal("b", await SendAsync(gateway));
            }
        }
    }

    // Moves the clock one step, then waits until the prober has looked at the circuits and any probe it started is over.
    private async Task StepAsync(GatewayHost gateway)
    {
        var prober = gateway.Services.GetServices<IHostedService>().OfType<HealthProber>().Single();
        var ticks = prober.Ticks;
        _clock.Advance(Step);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (prober.Ticks == ticks || prober.Running > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the prober did not settle");
            await Task.Delay(2);
        }
    }

    private static async Task<string?> SendAsync(GatewayHost gateway)
    {
        using var response = await gateway.PostAsync("v1/chat/completions", """{"model":"chat","messages":[{"role":"user","content":"hi"}]}""");
        await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response.Headers.TryGetValues("x-modelgateway-deployment", out var values) ? values.Single() : null;
    }
}
