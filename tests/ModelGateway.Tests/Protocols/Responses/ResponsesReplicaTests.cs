using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI;
using OpenAI.Responses;

#pragma warning disable OPENAI001

namespace ModelGateway.Tests.Protocols.Responses;

/// <summary>
/// Two gateway processes on one Redis serve the Responses API as one gateway: a conversation continues
/// through <c>previous_response_id</c> on whichever replica gets the next turn, stored responses belong
/// to the key that made them, and a pass-through follow-up goes back to the deployment holding its state.
/// </summary>
public sealed class ResponsesReplicaTests(ResponsesReplicaFixture fixture) : IClassFixture<ResponsesReplicaFixture>
{
    private readonly GatewayProcess[] _replicas = fixture.Replicas;
    private readonly FakeUpstreamServer _upstream = fixture.Upstream;

    [Fact]
    public async Task An_agent_conversation_of_five_tool_round_trips_continues_through_previous_response_id_on_either_replica()
    {
        var key = await fixture.CreateKeyAsync("agent");
        var upstreamBefore = _upstream.Requests.Count;
        const int RoundTrips = 5;
        for (var i = 0; i < RoundTrips; i++)
        {
            _upstream.Enqueue("claude-sonnet-4-5", new UpstreamBehavior { ToolCalls = [new("run_step", $$"""{"step":{{i}}}""")] });
        }

        _upstream.Enqueue("claude-sonnet-4-5", new UpstreamBehavior { Content = "All five steps are done." });
        var tool = ResponseTool.CreateFunctionTool("run_step", BinaryData.FromString("""{"type":"object","properties":{"step":{"type":"integer"}}}"""), strictModeEnabled: false, functionDescription: "Runs one step");

        var options = new CreateResponseOptions("claude", [ResponseItem.CreateUserMessageItem("Run the five steps.")]) { Instructions = "You are an agent.", StreamingEnabled = true };
        options.Tools.Add(tool);
        var callIds = new List<string>();
        string? lastText = null;
        for (var turn = 0; turn <= RoundTrips; turn++)
        {
            // Every turn lands on the other replica than the one before.
            var client = Client(_replicas[turn % 2], key);
            FunctionCallResponseItem? call = null;
            ResponseResult? completed = null;
            await foreach (var update in await client.CreateResponseStreamingAsync(options))
            {
                if (update is StreamingResponseOutputItemDoneUpdate { Item: FunctionCallResponseItem done })
                {
                    call = done;
                }
                else if (update is StreamingResponseCompletedUpdate finished)
                {
                    completed = finished.Response;
                }
            }

            Assert.NotNull(completed);
            if (call is null)
            {
                lastText = completed.GetOutputText();
                break;
            }

            callIds.Add(call.CallId);
            options = new CreateResponseOptions("claude", [ResponseItem.CreateFunctionCallOutputItem(call.CallId, $"step {turn} ok")])
            {
                PreviousResponseId = completed.Id,
                StreamingEnabled = true,
            };
            options.Tools.Add(tool);
        }

        Assert.Equal("All five steps are done.", lastText);
        Assert.Equal(RoundTrips, callIds.Count);

        // The last upstream request carried the whole conversation: every call and every result, in order.
        var conversation = _upstream.Requests.Skip(upstreamBefore).Where(r => r.Wire == UpstreamWire.Anthropic).ToList();
        Assert.Equal(RoundTrips + 1, conversation.Count);
        var last = conversation[^1].Json!;
        var messages = last["messages"]!.AsArray();
        var uses = messages.SelectMany(m => m!["content"] is JsonArray blocks ? blocks : []).Where(b => b!["type"]!.GetValue<string>() == "tool_use").ToList();
        var results = messages.SelectMany(m => m!["content"] is JsonArray blocks ? blocks : []).Where(b => b!["type"]!.GetValue<string>() == "tool_result").ToList();
        Assert.Equal(RoundTrips, uses.Count);
        Assert.Equal(RoundTrips, results.Count);
        Assert.Contains("step 4 ok", results[^1]!.ToJsonString(), StringComparison.Ordinal);

        // As on OpenAI, instructions belong to the request that sent them: a follow-up does not inherit them.
        Assert.Equal("You are an agent.", conversation[0].Json!["system"]![0]!["text"]!.GetValue<string>());
        Assert.Null(last["system"]);
    }

    [Fact]
    public async Task A_key_never_reads_continues_or_deletes_another_keys_responses()
    {
        var owner = await fixture.CreateKeyAsync("owner");
        var other = await fixture.CreateKeyAsync("other");
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "private" };
        ResponseResult made = await Client(_replicas[0], owner).CreateResponseAsync(new CreateResponseOptions("claude", [ResponseItem.CreateUserMessageItem("secret")]));

        using var stolenRead = await SendAsync(_replicas[1], HttpMethod.Get, $"v1/responses/{made.Id}", other);
        using var stolenDelete = await SendAsync(_replicas[1], HttpMethod.Delete, $"v1/responses/{made.Id}", other);
        var stolenFollowUp = await Assert.ThrowsAsync<ClientResultException>(() => Client(_replicas[1], other).CreateResponseAsync(
            new CreateResponseOptions("claude", [ResponseItem.CreateUserMessageItem("and?")]) { PreviousResponseId = made.Id }));
        using var ownRead = await SendAsync(_replicas[1], HttpMethod.Get, $"v1/responses/{made.Id}", owner);

        Assert.Equal(HttpStatusCode.NotFound, stolenRead.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, stolenDelete.StatusCode);
        Assert.Equal(400, stolenFollowUp.Status);
        Assert.Contains("previous_response_not_found", stolenFollowUp.GetRawResponse()!.Content.ToString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, ownRead.StatusCode);
        var stored = JsonNode.Parse(await ownRead.Content.ReadAsStringAsync())!;
        Assert.Equal(made.Id, stored["id"]!.GetValue<string>());
        Assert.Equal("private", stored["output"]![0]!["content"]![0]!["text"]!.GetValue<string>());

        using var ownDelete = await SendAsync(_replicas[0], HttpMethod.Delete, $"v1/responses/{made.Id}", owner);
        using var afterDelete = await SendAsync(_replicas[1], HttpMethod.Get, $"v1/responses/{made.Id}", owner);
        Assert.Equal(HttpStatusCode.OK, ownDelete.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, afterDelete.StatusCode);
    }

    [Fact]
    public async Task Store_false_keeps_nothing_to_read_or_continue()
    {
        var key = await fixture.CreateKeyAsync("codex");
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ephemeral" };

        ResponseResult made = await Client(_replicas[0], key).CreateResponseAsync(new CreateResponseOptions("claude", [ResponseItem.CreateUserMessageItem("hi")]) { StoredOutputEnabled = false });
        using var read = await SendAsync(_replicas[1], HttpMethod.Get, $"v1/responses/{made.Id}", key);

        Assert.Equal("ephemeral", made.GetOutputText());
        Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
    }

    [Fact]
    public async Task A_pass_through_follow_up_goes_back_to_the_deployment_that_holds_its_state()
    {
        var key = await fixture.CreateKeyAsync("pinned");
        var standby = fixture.Standby;

        // The first choice fails once, so the standby account makes (and holds) the response.
        _upstream.Enqueue("gpt-4.1", new UpstreamBehavior { StatusCode = 500 });
        standby.DefaultBehavior = new UpstreamBehavior { Content = "from the standby account" };
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "from the first account" };
        ResponseResult first = await Client(_replicas[0], key).CreateResponseAsync(new CreateResponseOptions("pair", [ResponseItem.CreateUserMessageItem("hi")]));
        var standbyBefore = standby.RequestCount;

        ResponseResult followUp = await Client(_replicas[1], key).CreateResponseAsync(new CreateResponseOptions("pair", [ResponseItem.CreateUserMessageItem("more")]) { PreviousResponseId = first.Id });
        var standbyAfter = standby.RequestCount;
        var forwarded = standby.Requests[^1].Json!;

        // Reading it back asks the deployment holding it too (a GET, so after the follow-up's request).
        using var read = await SendAsync(_replicas[1], HttpMethod.Get, $"v1/responses/{first.Id}", key);

        Assert.Equal("from the standby account", first.GetOutputText());
        Assert.Equal("from the standby account", followUp.GetOutputText());
        Assert.Equal(standbyBefore + 1, standbyAfter);
        Assert.Equal(first.Id, forwarded["previous_response_id"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal(first.Id, JsonNode.Parse(await read.Content.ReadAsStringAsync())!["id"]!.GetValue<string>());
        Assert.Equal("standby", read.Headers.GetValues("x-modelgateway-deployment").Single());
    }

    private static ResponsesClient Client(GatewayProcess replica, string key) => new OpenAIClient(
        new ApiKeyCredential(key),
        new OpenAIClientOptions { Endpoint = new Uri(replica.Http.BaseAddress!, "v1"), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) }).GetResponsesClient();

    private static async Task<HttpResponseMessage> SendAsync(GatewayProcess replica, HttpMethod method, string path, string key)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await replica.Http.SendAsync(request);
    }
}

/// <summary>Two gateway processes with keys, on one Redis, in front of two fake provider accounts.</summary>
public sealed class ResponsesReplicaFixture : IAsyncLifetime
{
    public const string MasterKey = "mk-responses-replicas-0123456789";

    private RedisServer _redis = null!;
    private string _directory = null!;

    internal GatewayProcess[] Replicas { get; private set; } = [];

    public FakeUpstreamServer Upstream { get; private set; } = null!;

    /// <summary>A second OpenAI account, where the <c>pair</c> route fails over to.</summary>
    public FakeUpstreamServer Standby { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        Standby = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _redis = await RedisServer.StartAsync();
        _directory = Directory.CreateTempSubdirectory("modelgateway-responses-").FullName;
        var config = Path.Combine(_directory, "routing.yaml");
        await File.WriteAllTextAsync(config, ResponsesRoutes.Yaml(Upstream, $$"""
              - { name: pair, targets: [gpt, standby] }
            """).Replace("deployments:", $$"""
              - { name: standby-account, kind: openai, baseUrl: "{{Standby.OpenAIBaseUrl}}", apiKey: "{{TestConfigs.ProviderKey}}" }
            deployments:
              - { name: standby, provider: standby-account, model: gpt-4.1 }
            """, StringComparison.Ordinal));
        var settings = new Dictionary<string, string>
        {
            ["State:Redis"] = _redis.ConnectionString,
            ["State:CommandTimeout"] = "00:00:02",
            ["Auth:Mode"] = "keys",
            ["Admin:MasterKey"] = MasterKey,
            ["Observability:AccessLog"] = "false",
        };
        Replicas = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => GatewayProcess.StartAsync(config, settings)));
    }

    public async Task<string> CreateKeyAsync(string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "admin/keys") { Content = GatewayHost.Json($$"""{"name":"{{name}}-{{Guid.NewGuid():N}}"}""") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await Replicas[0].Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in Replicas)
        {
            await replica.DisposeAsync();
        }

        await _redis.DisposeAsync();
        await Upstream.DisposeAsync();
        await Standby.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
