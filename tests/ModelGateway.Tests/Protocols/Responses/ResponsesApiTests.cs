using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Responses;

#pragma warning disable OPENAI001 // The SDK marks its Responses client experimental; the wire it speaks is OpenAI's GA API.

namespace ModelGateway.Tests.Protocols.Responses;

/// <summary>
/// The official OpenAI SDK's Responses client, through the gateway, against routes served by OpenAI
/// (passed through byte for byte), an OpenAI-compatible server and Anthropic (both translated) and the
/// simulator: the same answers, streams, tool loops, images, errors and usage whatever serves them.
/// </summary>
public sealed class ResponsesApiTests : IAsyncLifetime
{
    private const string Answer = "Responses say hello, one piece at a time.";
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { ExpectedApiKey = TestConfigs.ProviderKey });
        _gateway = await GatewayHost.StartAsync(ResponsesRoutes.Yaml(_upstream));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private ResponsesClient Client() => _gateway.OpenAI().GetResponsesClient();

    [Theory]
    [InlineData("oai")]
    [InlineData("compat")]
    [InlineData("claude")]
    [InlineData("gemini")]
    public async Task Plain_and_streamed_answers_carry_the_same_text_and_usage(string route)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5, PromptTokens = 21, CompletionTokens = 9 };

        ResponseResult whole = await Client().CreateResponseAsync(new CreateResponseOptions(route, [ResponseItem.CreateUserMessageItem("Hello")]) { Instructions = "Be brief." });
        var streamed = new StringBuilder();
        ResponseResult? completed = null;
        var options = new CreateResponseOptions(route, [ResponseItem.CreateUserMessageItem("Hello")]) { Instructions = "Be brief.", StreamingEnabled = true };
        await foreach (var update in await Client().CreateResponseStreamingAsync(options))
        {
            switch (update)
            {
                case StreamingResponseOutputTextDeltaUpdate delta:
                    streamed.Append(delta.Delta);
                    break;
                case StreamingResponseCompletedUpdate done:
                    completed = done.Response;
                    break;
            }
        }

        Assert.Equal(Answer, whole.GetOutputText());
        Assert.Equal(ResponseStatus.Completed, whole.Status);
        Assert.StartsWith("resp_", whole.Id, StringComparison.Ordinal);
        Assert.Equal(21, whole.Usage.InputTokenCount);
        Assert.Equal(9, whole.Usage.OutputTokenCount);
        Assert.Equal(Answer, streamed.ToString());
        Assert.NotNull(completed);
        Assert.Equal(Answer, completed.GetOutputText());
        Assert.Equal(21, completed.Usage.InputTokenCount);
        Assert.Equal(30, completed.Usage.TotalTokenCount);
    }

    [Theory]
    [InlineData("oai", "/v1/responses")]
    [InlineData("compat", "/v1/chat/completions")]
    [InlineData("claude", "/v1/messages")]
    public async Task Openai_deployments_get_the_clients_bytes_and_other_kinds_their_own_wire(string route, string upstreamPath)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ok" };
        var body = $$$"""{"model":"{{{route}}}","input":"Hi","instructions":"Be terse.","store":false,"some_new_field":{"x":1}}""";

        using var response = await _gateway.PostAsync("v1/responses", body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal(upstreamPath, seen.Path);
        if (route == "oai")
        {
            // Byte for byte, with only the model spliced to the deployment's.
            Assert.Equal(body.Replace("\"model\":\"oai\"", "\"model\":\"gpt-4.1\"", StringComparison.Ordinal), Encoding.UTF8.GetString(seen.Body));
        }
        else
        {
            Assert.DoesNotContain("some_new_field", Encoding.UTF8.GetString(seen.Body), StringComparison.Ordinal);
            Assert.Contains("Be terse.", Encoding.UTF8.GetString(seen.Body), StringComparison.Ordinal);
            Assert.Equal("some_new_field", response.Headers.GetValues("x-modelgateway-dropped").Single());
        }
    }

    [Theory]
    [InlineData("oai")]
    [InlineData("compat")]
    [InlineData("claude")]
    [InlineData("sim")]
    public async Task Every_stream_event_is_named_as_its_type_and_numbered_from_zero(string route)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 4 };

        var events = await StreamEventsAsync($$"""{"model":"{{route}}","input":"Hello","stream":true}""");

        Assert.Equal("response.created", events[0].Name);
        Assert.Equal("response.in_progress", events[1].Name);
        Assert.Equal("response.completed", events[^1].Name);
        for (var i = 0; i < events.Count; i++)
        {
            Assert.Equal(events[i].Name, events[i].Data["type"]!.GetValue<string>());
            Assert.Equal(i, events[i].Data["sequence_number"]!.GetValue<int>());
        }

        var deltas = events.Where(e => e.Name == "response.output_text.delta").Select(e => e.Data["delta"]!.GetValue<string>());
        var done = events.Single(e => e.Name == "response.output_text.done").Data["text"]!.GetValue<string>();
        Assert.Equal(done, string.Concat(deltas));
        Assert.Contains(events, e => e.Name == "response.content_part.added");
        Assert.Contains(events, e => e.Name == "response.output_item.done");
        Assert.NotNull(events[^1].Data["response"]!["usage"]);
    }

    [Theory]
    [InlineData("oai")]
    [InlineData("claude")]
    public async Task Parallel_function_calls_stream_as_items_and_their_outputs_close_the_loop(string route)
    {
        _upstream.Enqueue(route == "oai" ? "gpt-4.1" : "claude-sonnet-4-5", new UpstreamBehavior
        {
            ToolCalls = [new("get_weather", """{"location":"Paris","unit":"celsius"}"""), new("get_time", """{"timezone":"Europe/Paris"}""")],
        });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Sunny, and it is noon." };
        var tools = ResponsesRoutes.WeatherTools();
        var options = new CreateResponseOptions(route, [ResponseItem.CreateUserMessageItem("Weather and time in Paris?")]) { StreamingEnabled = true };
        foreach (var tool in tools)
        {
            options.Tools.Add(tool);
        }

        var calls = new List<FunctionCallResponseItem>();
        var argumentDeltas = new Dictionary<string, StringBuilder>();
        string? responseId = null;
        await foreach (var update in await Client().CreateResponseStreamingAsync(options))
        {
            switch (update)
            {
                case StreamingResponseFunctionCallArgumentsDeltaUpdate delta:
                    (argumentDeltas.TryGetValue(delta.ItemId, out var sb) ? sb : argumentDeltas[delta.ItemId] = new StringBuilder()).Append(delta.Delta.ToString());
                    break;
                case StreamingResponseOutputItemDoneUpdate { Item: FunctionCallResponseItem call }:
                    calls.Add(call);
                    break;
                case StreamingResponseCompletedUpdate completed:
                    responseId = completed.Response.Id;
                    break;
            }
        }

        Assert.Equal(["get_weather", "get_time"], calls.Select(c => c.FunctionName));
        Assert.Equal("Paris", JsonDocument.Parse(calls[0].FunctionArguments).RootElement.GetProperty("location").GetString());
        Assert.All(calls, c => Assert.Equal(c.FunctionArguments.ToString(), argumentDeltas[c.Id].ToString()));
        Assert.Equal(2, calls.Select(c => c.CallId).Distinct().Count());

        var next = new CreateResponseOptions(route, [.. calls.Select(c => ResponseItem.CreateFunctionCallOutputItem(c.CallId, $"result of {c.FunctionName}"))]) { PreviousResponseId = responseId };
        foreach (var tool in tools)
        {
            next.Tools.Add(tool);
        }

        ResponseResult final = await Client().CreateResponseAsync(next);

        Assert.Equal("Sunny, and it is noon.", final.GetOutputText());
        var followUp = _upstream.Requests[^1];
        var sent = Encoding.UTF8.GetString(followUp.Body);
        Assert.All(calls, c => Assert.Contains(c.CallId, sent, StringComparison.Ordinal));
        Assert.Contains("result of get_time", sent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tool_loop_on_an_openai_compatible_server_maps_calls_and_results_to_chat_completions()
    {
        _upstream.Enqueue("qwen3", new UpstreamBehavior { RespondWithToolCall = true, ToolArguments = """{"location":"Oslo"}""" });
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Cold." };
        var options = new CreateResponseOptions("compat", [ResponseItem.CreateUserMessageItem("Weather in Oslo?")]);
        options.Tools.Add(ResponsesRoutes.WeatherTools()[0]);

        ResponseResult first = await Client().CreateResponseAsync(options);
        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(first.OutputItems));
        var next = new CreateResponseOptions("compat", [ResponseItem.CreateFunctionCallOutputItem(call.CallId, "-3C")]) { PreviousResponseId = first.Id };
        next.Tools.Add(ResponsesRoutes.WeatherTools()[0]);
        ResponseResult second = await Client().CreateResponseAsync(next);

        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("Cold.", second.GetOutputText());
        var chat = _upstream.Requests[^1].Json!;
        var messages = chat["messages"]!.AsArray();
        Assert.Equal("user", messages[0]!["role"]!.GetValue<string>());
        Assert.Equal(call.CallId, messages[1]!["tool_calls"]![0]!["id"]!.GetValue<string>());
        Assert.Equal("tool", messages[2]!["role"]!.GetValue<string>());
        Assert.Equal("-3C", messages[2]!["content"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("claude")]
    [InlineData("compat")]
    public async Task An_inline_image_reaches_the_translated_provider_as_an_image(string route)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "A red dot." };
        var png = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==");
        var item = ResponseItem.CreateUserMessageItem([ResponseContentPart.CreateInputTextPart("What is this?"), ResponseContentPart.CreateInputImagePart(BinaryData.FromBytes(png, "image/png"), ResponseImageDetailLevel.Low)]);

        ResponseResult result = await Client().CreateResponseAsync(new CreateResponseOptions(route, [item]));

        Assert.Equal("A red dot.", result.GetOutputText());
        var sent = _upstream.Requests[^1].Json!.ToJsonString();
        Assert.Contains(Convert.ToBase64String(png), sent, StringComparison.Ordinal);
        Assert.Contains(route == "claude" ? "\"type\":\"image\"" : "\"type\":\"image_url\"", sent, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("oai", 429)]
    [InlineData("compat", 429)]
    [InlineData("claude", 400)]
    public async Task Upstream_errors_reach_the_sdk_as_openai_errors_with_their_status(string route, int status)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { StatusCode = status, Headers = new Dictionary<string, string> { ["retry-after"] = "7" } };

        var error = await Assert.ThrowsAsync<ClientResultException>(() => Client().CreateResponseAsync(new CreateResponseOptions(route, [ResponseItem.CreateUserMessageItem("Hi")])));

        Assert.Equal(status, error.Status);
        var body = JsonNode.Parse(error.GetRawResponse()!.Content.ToString())!;
        Assert.NotNull(body["error"]!["message"]);
        Assert.NotNull(body["error"]!["type"]);
    }

    [Theory]
    [InlineData("compat", "response.failed")]
    [InlineData("oai", "error")]
    public async Task A_stream_broken_mid_way_ends_in_a_failure_event_and_is_never_presented_as_complete(string route, string lastEvent)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5, Fault = UpstreamFault.ResetAfterChunks, FaultAfterChunks = 2 };

        var events = await StreamEventsAsync($$"""{"model":"{{route}}","input":"Hello","stream":true}""");

        Assert.Contains(events, e => e.Name == "response.output_text.delta");
        Assert.DoesNotContain(events, e => e.Name == "response.completed");
        Assert.Equal(lastEvent, events[^1].Name);
    }

    [Fact]
    public async Task Built_in_tools_are_dropped_and_named_for_a_translated_deployment_but_pass_through_to_openai()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ok" };
        const string Tools = """[{"type":"function","name":"lookup","parameters":{"type":"object","properties":{}}},{"type":"web_search"},{"type":"namespace","name":"multi_agent_v1","description":"agents","tools":[]}]""";

        using var translated = await _gateway.PostAsync("v1/responses", $$"""{"model":"claude","input":"Hi","tools":{{Tools}}}""");
        var toAnthropic = _upstream.Requests[^1].Json!;
        using var passed = await _gateway.PostAsync("v1/responses", $$"""{"model":"oai","input":"Hi","tools":{{Tools}}}""");
        var toOpenAI = _upstream.Requests[^1].Json!;

        Assert.Equal(HttpStatusCode.OK, translated.StatusCode);
        Assert.Equal("tools.web_search,tools.namespace", translated.Headers.GetValues("x-modelgateway-dropped").Single());
        Assert.Equal(["lookup"], toAnthropic["tools"]!.AsArray().Select(t => t!["name"]!.GetValue<string>()));
        Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        Assert.False(passed.Headers.Contains("x-modelgateway-dropped"));
        Assert.Equal(3, toOpenAI["tools"]!.AsArray().Count);
    }

    [Fact]
    public async Task Forcing_a_built_in_tool_on_a_translated_deployment_is_a_clear_400_and_no_upstream_call()
    {
        using var response = await _gateway.PostAsync("v1/responses", """{"model":"claude","input":"Hi","tools":[{"type":"web_search"}],"tool_choice":{"type":"web_search"}}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Contains("web_search", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Empty(_upstream.Requests);
    }

    [Theory]
    [InlineData("""{"model":"claude"}""", "input")]
    [InlineData("""{"model":"claude","input":"x","max_output_tokens":5}""", "max_output_tokens")]
    [InlineData("""{"model":"claude","input":[{"role":"robot","content":"x"}]}""", "input[0].role")]
    [InlineData("""{"model":"claude","input":[{"type":"function_call_output","output":"x"}]}""", "input[0].call_id")]
    [InlineData("""{"model":"claude","input":"x","text":{"format":{"type":"json_schema","schema":{}}}}""", "text.format.name")]
    [InlineData("""{"model":"claude","input":"x","temperature":3}""", "temperature")]
    [InlineData("""{"model":"claude","input":"x","tool_choice":"sometimes"}""", "tool_choice")]
    public async Task What_openai_refuses_gets_openais_400_without_an_upstream_call(string body, string param)
    {
        using var response = await _gateway.PostAsync("v1/responses", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(param, error["param"]!.GetValue<string>());
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        Assert.Empty(_upstream.Requests);
    }

    [Fact]
    public async Task A_json_schema_format_reaches_the_provider_as_structured_output()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = """{"city":"Paris"}""" };
        var options = new CreateResponseOptions("compat", [ResponseItem.CreateUserMessageItem("Capital of France?")])
        {
            TextOptions = new ResponseTextOptions { TextFormat = ResponseTextFormat.CreateJsonSchemaFormat("city", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""), jsonSchemaIsStrict: true) },
            ReasoningOptions = new ResponseReasoningOptions { ReasoningEffortLevel = ResponseReasoningEffortLevel.Low },
            MaxOutputTokenCount = 300,
        };

        ResponseResult result = await Client().CreateResponseAsync(options);

        Assert.Equal("Paris", JsonDocument.Parse(result.GetOutputText()).RootElement.GetProperty("city").GetString());
        var chat = _upstream.Requests[^1].Json!;
        Assert.Equal("json_schema", chat["response_format"]!["type"]!.GetValue<string>());
        Assert.Equal("city", chat["response_format"]!["json_schema"]!["name"]!.GetValue<string>());
        Assert.Equal("low", chat["reasoning_effort"]!.GetValue<string>());
        Assert.Equal(300, chat["max_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Usage_the_access_log_and_metrics_name_the_responses_api()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ok", PromptTokens = 17, CompletionTokens = 3 };

        await Client().CreateResponseAsync(new CreateResponseOptions("claude", [ResponseItem.CreateUserMessageItem("Hi")]));

        var line = Assert.Single(await _gateway.Logs.WaitForLinesAsync(l => l.Contains("ModelGateway.AccessLog", StringComparison.Ordinal) && l.Contains("/v1/responses", StringComparison.Ordinal)));
        Assert.True(line.Contains("api=\"responses\"", StringComparison.Ordinal), line);
        Assert.True(line.Contains("tokens=17/3", StringComparison.Ordinal), line);
        // The exporter caches a scrape briefly: ask again until the request shows.
        var metrics = string.Empty;
        for (var i = 0; i < 50 && !metrics.Contains("api=\"responses\"", StringComparison.Ordinal); i++)
        {
            await Task.Delay(100);
            metrics = await _gateway.Http.GetStringAsync("metrics");
        }

        var requests = metrics.Split('\n').Where(l => l.StartsWith("modelgateway_requests_total{", StringComparison.Ordinal)).ToList();
        Assert.True(requests.Any(l => l.Contains("api=\"responses\"", StringComparison.Ordinal) && l.Contains("route=\"claude\"", StringComparison.Ordinal)), metrics);
    }

    private async Task<List<(string Name, JsonNode Data)>> StreamEventsAsync(string body)
    {
        using var response = await _gateway.PostAsync("v1/responses", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await ResponsesRoutes.ReadEventsAsync(response);
    }
}
