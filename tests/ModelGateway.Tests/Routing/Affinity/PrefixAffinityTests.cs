using Anthropic.Models.Messages;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Tests.Protocols.Anthropic;
using OpenAI.Chat;

namespace ModelGateway.Tests.Routing.Affinity;

/// <summary>
/// Through the real host: a conversation's turns (and requests sharing a long system prompt) stick to
/// the deployment that served their prefix last, among equally priced ones, as long as it is healthy.
/// </summary>
public sealed class PrefixAffinityTests : IAsyncLifetime
{
    private readonly FakeUpstreamServer[] _upstreams = new FakeUpstreamServer[3];
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        for (var i = 0; i < _upstreams.Length; i++)
        {
            _upstreams[i] = await FakeUpstreamServer.StartAsync();
        }

        _gateway = await GatewayHost.StartAsync(Config());
    }

    private string Config() => $$"""
            providers:
              - { name: pa, kind: openai-compatible, baseUrl: "{{_upstreams[0].OpenAIBaseUrl}}" }
              - { name: pb, kind: openai-compatible, baseUrl: "{{_upstreams[1].OpenAIBaseUrl}}" }
              - { name: pc, kind: openai-compatible, baseUrl: "{{_upstreams[2].OpenAIBaseUrl}}" }
              - { name: ca, kind: anthropic, baseUrl: "{{_upstreams[0].AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: cb, kind: anthropic, baseUrl: "{{_upstreams[1].AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
              - { name: cc, kind: anthropic, baseUrl: "{{_upstreams[2].AnthropicBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            defaults:
              circuitBreaker: { consecutiveFailures: 2, minimumThroughput: 1000, breakDuration: 30s }
            deployments:
              - { name: a, provider: pa, model: m, pricing: { input: 1.0, output: 4.0, cacheRead: 0.1 } }
              - { name: b, provider: pb, model: m, pricing: { input: 1.0, output: 4.0, cacheRead: 0.1 } }
              - { name: c, provider: pc, model: m, pricing: { input: 1.0, output: 4.0, cacheRead: 0.1 } }
              - { name: claude-a, provider: ca, model: claude-sonnet-4-5, pricing: { input: 3.0, output: 15.0, cacheRead: 0.3 } }
              - { name: claude-b, provider: cb, model: claude-sonnet-4-5, pricing: { input: 3.0, output: 15.0, cacheRead: 0.3 } }
              - { name: claude-c, provider: cc, model: claude-sonnet-4-5, pricing: { input: 3.0, output: 15.0, cacheRead: 0.3 } }
            routes:
              - { name: sticky, strategy: cost, targets: [a, b, c], affinity: { prefix: true, minPrefixTokens: 200, ttl: 5m } }
              - { name: counted, strategy: cost, targets: [a, b, c], affinity: { minPrefixTokens: 200 } }
              - { name: guarded, strategy: cost, targets: [a, b, c], resilience: { retries: 0 }, affinity: { minPrefixTokens: 200 } }
              - { name: spread, strategy: cost, targets: [a, b, c] }
              - { name: only-a, targets: [a], resilience: { retries: 0 } }
              - { name: only-b, targets: [b], resilience: { retries: 0 } }
              - { name: only-c, targets: [c], resilience: { retries: 0 } }
              - { name: claude, strategy: cost, targets: [claude-a, claude-b, claude-c], affinity: { minPrefixTokens: 200 } }
            """;

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        foreach (var upstream in _upstreams)
        {
            await upstream.DisposeAsync();
        }
    }

    // About 700 estimated tokens: well over the routes' minPrefixTokens of 200.
    private static string SystemPrompt(string topic)
        => "You are the support assistant for " + topic + ". " + string.Concat(Enumerable.Repeat("Answer precisely, cite the manual, never guess a part number. ", 45));

    private async Task<(string Deployment, string Reason, string Answer)> TurnAsync(string route, List<ChatMessage> conversation)
    {
        var result = await _gateway.OpenAI().GetChatClient(route).CompleteChatAsync(conversation);
        var raw = result.GetRawResponse();
        Assert.True(raw.Headers.TryGetValue("x-modelgateway-deployment", out var deployment));
        Assert.True(raw.Headers.TryGetValue("x-modelgateway-route-reason", out var reason));
        return (deployment!, reason!, result.Value.Content[0].Text);
    }

    // A short request in between moves the route's tie-breaking rotation on, as other traffic would.
    private async Task OtherTrafficAsync(string route)
        => await _gateway.OpenAI().GetChatClient(route).CompleteChatAsync([new UserChatMessage("hi")]);

    private async Task<List<string>> ConversationAsync(string route, string topic, int turns)
    {
        List<ChatMessage> conversation = [new SystemChatMessage(SystemPrompt(topic)), new UserChatMessage("My printer jams on page 2.")];
        var servedBy = new List<string>();
        for (var turn = 0; turn < turns; turn++)
        {
            var (deployment, _, answer) = await TurnAsync(route, conversation);
            servedBy.Add(deployment);
            conversation.Add(new AssistantChatMessage(answer));
            conversation.Add(new UserChatMessage("Still jams, turn " + turn + "."));
            await OtherTrafficAsync(route);
        }

        return servedBy;
    }

    [Fact]
    public async Task A_conversations_turns_stick_to_one_of_several_equally_priced_deployments()
    {
        List<ChatMessage> conversation = [new SystemChatMessage(SystemPrompt("sticky printers")), new UserChatMessage("My printer jams on page 2.")];
        var (first, _, answer) = await TurnAsync("sticky", conversation);
        for (var turn = 0; turn < 4; turn++)
        {
            await OtherTrafficAsync("sticky");
            conversation.Add(new AssistantChatMessage(answer));
            conversation.Add(new UserChatMessage("Still jams, turn " + turn + "."));
            (var deployment, var reason, answer) = await TurnAsync("sticky", conversation);

            Assert.Equal(first, deployment);
            Assert.Matches(@"^affinity: prefix \d+(\.\d)?k? tokens last served by " + first + "$", reason);
        }

        // The same conversation on a route without affinity spreads over the equal deployments: the stickiness above is affinity's.
        Assert.True((await ConversationAsync("spread", "spread printers", 5)).Distinct().Count() > 1);
    }

    [Fact]
    public async Task Conversations_with_different_system_prompts_may_go_to_different_deployments_and_each_sticks_to_its_own()
    {
        // Three conversations take turns, as concurrent users would.
        var topics = new[] { "ovens", "kettles", "toasters" };
        var histories = topics.Select(t => new List<ChatMessage> { new SystemChatMessage(SystemPrompt(t)), new UserChatMessage("It will not heat.") }).ToList();
        var conversations = topics.Select(_ => new List<string>()).ToList();
        for (var turn = 0; turn < 3; turn++)
        {
            for (var i = 0; i < topics.Length; i++)
            {
                var (deployment, _, answer) = await TurnAsync("sticky", histories[i]);
                conversations[i].Add(deployment);
                histories[i].Add(new AssistantChatMessage(answer));
                histories[i].Add(new UserChatMessage("Still cold, turn " + turn + "."));
            }
        }

        foreach (var servedBy in conversations)
        {
            Assert.Single(servedBy.Distinct());
        }

        Assert.True(conversations.Select(c => c[0]).Distinct().Count() > 1, string.Join(", ", conversations.Select(c => c[0])));
    }

    [Fact]
    public async Task An_unhealthy_remembered_deployment_is_not_used_and_the_conversation_moves_on()
    {
        List<ChatMessage> conversation = [new SystemChatMessage(SystemPrompt("guarded printers")), new UserChatMessage("My printer jams on page 2.")];
        var (first, _, answer) = await TurnAsync("guarded", conversation);
        var upstream = _upstreams[first[^1] - 'a'];
        upstream.DefaultBehavior = new UpstreamBehavior { StatusCode = 500 };
        try
        {
            // Another route's failures open the remembered deployment's circuit (two in a row are enough here).
            for (var i = 0; i < 2; i++)
            {
                using var failed = await _gateway.PostAsync("v1/chat/completions", $$"""{"model":"only-{{first}}","messages":[{"role":"user","content":"hi"}]}""");
                Assert.False(failed.IsSuccessStatusCode);
            }
            var asked = upstream.RequestCount;

            conversation.Add(new AssistantChatMessage(answer));
            conversation.Add(new UserChatMessage("Still jams."));
            var (second, _, answer2) = await TurnAsync("guarded", conversation);
            Assert.NotEqual(first, second);
            Assert.Equal(asked, upstream.RequestCount);

            // The next turn follows the conversation to where it was served last.
            conversation.Add(new AssistantChatMessage(answer2));
            conversation.Add(new UserChatMessage("And now?"));
            var (third, reason, _) = await TurnAsync("guarded", conversation);
            Assert.Equal(second, third);
            Assert.EndsWith("last served by " + second, reason, StringComparison.Ordinal);

            var metrics = await ScrapeAsync("route=\"guarded\"", "outcome=\"overridden\"");
            Assert.Equal(1, Count(metrics, "guarded", "overridden"));
        }
        finally
        {
            upstream.DefaultBehavior = new UpstreamBehavior();
        }
    }

    [Fact]
    public async Task The_affinity_metric_counts_hits_and_misses_per_route()
    {
        var servedBy = await ConversationAsync("counted", "counted printers", 4);
        Assert.Single(servedBy.Distinct());

        // The short requests in between are under minPrefixTokens: not counted at all.
        var metrics = await ScrapeAsync("route=\"counted\"", "outcome=\"hit\"");
        Assert.Equal(1, Count(metrics, "counted", "miss"));
        Assert.Equal(3, Count(metrics, "counted", "hit"));
        Assert.Equal(0, Count(metrics, "counted", "overridden"));
    }

    [Fact]
    public async Task An_Anthropic_SDK_conversation_sticks_to_one_deployment()
    {
        var client = AnthropicClients.For(_gateway);
        var ask = new MessageCreateParams
        {
            Model = "claude",
            MaxTokens = 256,
            System = SystemPrompt("anthropic printers"),
            Messages = [new UserMessageParam("My printer jams on page 2.")],
        };

        var servedBy = new List<int>();
        for (var turn = 0; turn < 4; turn++)
        {
            var before = _upstreams.Select(u => u.RequestCount).ToArray();
            var message = await client.Messages.Create(ask);
            servedBy.Add(Array.FindIndex(_upstreams, u => u.RequestCount > before[Array.IndexOf(_upstreams, u)]));
            Assert.True(message.Content[0].TryPickText(out var text));
            ask = ask with
            {
                Messages = [.. ask.Messages, new AssistantMessageParam(new List<ContentBlockParam> { new TextBlockParam(text!.Text) }), new UserMessageParam("Still jams, turn " + turn + ".")],
            };

            // Other traffic on the route in between.
            await client.Messages.Create(new MessageCreateParams { Model = "claude", MaxTokens = 16, Messages = [new UserMessageParam("hi")] });
        }

        Assert.DoesNotContain(-1, servedBy);
        Assert.Single(servedBy.Distinct());
    }

    [Fact]
    public async Task A_bad_affinity_block_is_refused_with_every_problem_and_its_path()
    {
        var result = await _gateway.EditConfigAsync(Config().Replace("affinity: { prefix: true, minPrefixTokens: 200, ttl: 5m }", "affinity: { minPrefixTokens: 0, ttl: forever, weight: -1 }", StringComparison.Ordinal));

        Assert.False(result.Succeeded);
        Assert.Contains(result.Errors, e => e.Path == "routes[0].affinity.minPrefixTokens");
        Assert.Contains(result.Errors, e => e.Path == "routes[0].affinity.ttl");
        Assert.Contains(result.Errors, e => e.Path == "routes[0].affinity.weight");
    }

    // The exporter caches a scrape briefly: ask again until the series shows.
    private async Task<string> ScrapeAsync(params string[] expected)
    {
        var metrics = string.Empty;
        for (var i = 0; i < 50; i++)
        {
            metrics = await _gateway.Http.GetStringAsync("metrics");
            if (metrics.Split('\n').Any(l => l.StartsWith("modelgateway_routing_affinity_total{", StringComparison.Ordinal) && expected.All(e => l.Contains(e, StringComparison.Ordinal))))
            {
                break;
            }

            await Task.Delay(100);
        }

        return metrics;
    }

    private static long Count(string metrics, string route, string outcome)
    {
        var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith("modelgateway_routing_affinity_total{", StringComparison.Ordinal)
            && l.Contains("route=\"" + route + "\"", StringComparison.Ordinal) && l.Contains("outcome=\"" + outcome + "\"", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
