using System.ClientModel;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ModelGateway.FakeUpstream;
using ModelGateway.Tests.Infrastructure;
using OpenAI.Chat;

namespace ModelGateway.Tests.Providers;

/// <summary>
/// An unmodified OpenAI SDK, through the gateway, gets everything from a route served by AWS Bedrock's
/// Converse API: the request is translated and SigV4-signed (the fake recomputes every signature and
/// refuses a wrong one), the binary event stream and the AWS errors are translated back.
/// </summary>
public sealed class BedrockProviderTests : IAsyncLifetime
{
    internal const string AccessKeyId = "AKIAGATEWAYTEST00001";
    internal const string SecretAccessKey = "bedrockTestSecret/Kx7Qp2Zr9Lm4Vn8Tw3Ys6Hd1Fj";
    private const string WrongSecret = "bedrockWrongSecret/Pq8Rt5Uv2Wx9Yz3Ab6Cd0Ef4";
    private const string MasterKey = "mk-bedrock-tests-0123456789";

    // A cross-region inference profile id: its dots and colon travel escaped in the path and are signed that way.
    private const string Model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    private const string Primary = "us.anthropic.claude-primary-v1:0";
    private const string Backup = "eu.anthropic.claude-backup-v1:0";
    private const string Llama = "us.meta.llama3-3-70b-instruct-v1:0";
    private const string ProfileArn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0";

    private readonly ConcurrentQueue<Activity> _spans = new();
    private ActivityListener _listener = null!;
    private FakeUpstreamServer _upstream = null!;
    private GatewayHost _gateway = null!;
    private string _secretFile = null!;
    private string _wrongSecretFile = null!;

    public async Task InitializeAsync()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "ModelGateway" or "Microsoft.AspNetCore" or "System.Net.Http",
            Sample = static (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _spans.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
        _secretFile = Path.GetTempFileName();
        _wrongSecretFile = Path.GetTempFileName();
        await File.WriteAllTextAsync(_secretFile, SecretAccessKey + "\n");
        await File.WriteAllTextAsync(_wrongSecretFile, WrongSecret);
        _upstream = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { AwsCredentials = new AwsCredentials(AccessKeyId, SecretAccessKey), AwsRegion = "us-east-1" });
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - { name: aws, kind: bedrock, region: us-east-1, baseUrl: "{{_upstream.BedrockEndpoint}}", accessKeyId: {{AccessKeyId}}, secretAccessKey: "file:{{_secretFile}}" }
              - { name: aws-wrong, kind: bedrock, region: us-east-1, baseUrl: "{{_upstream.BedrockEndpoint}}", accessKeyId: {{AccessKeyId}}, secretAccessKey: "file:{{_wrongSecretFile}}" }
            deployments:
              - name: sonnet
                provider: aws
                model: "{{Model}}"
                contextWindow: 200000
                maxOutputTokens: 64000
                defaultMaxTokens: 1024
                pricing: { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75 }
              - { name: primary, provider: aws, model: "{{Primary}}" }
              - { name: backup, provider: aws, model: "{{Backup}}" }
              - { name: llama, provider: aws, model: "{{Llama}}" }
              - { name: wrong-key, provider: aws-wrong, model: "{{Model}}" }
              - { name: by-arn, provider: aws, model: "{{ProfileArn}}" }
              - { name: sonnet-catalog, provider: aws, model: "{{Model}}" }
            routes:
              - { name: claude, targets: [sonnet] }
              - { name: failover, strategy: priority, targets: [primary, backup] }
              - { name: llama, targets: [llama] }
              - { name: wrong-key, targets: [wrong-key] }
              - { name: by-arn, targets: [by-arn] }
              - { name: claude-catalog, targets: [sonnet-catalog] }
            """, new Dictionary<string, string?> { ["Admin:MasterKey"] = MasterKey });
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
        _listener.Dispose();
        File.Delete(_secretFile);
        File.Delete(_wrongSecretFile);
    }

    private ChatClient Chat(string route = "claude") => _gateway.OpenAI().GetChatClient(route);

    [Fact]
    public async Task Plain_and_streamed_chat_carry_the_same_text()
    {
        const string Answer = "Bedrock says hello, one piece at a time.";
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = Answer, ChunkCount = 5 };

        ChatCompletion whole = await Chat().CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hello")]);
        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hello")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(Answer, whole.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, whole.FinishReason);
        Assert.Equal(Answer, streamed.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal(["/converse", "/converse-stream"], _upstream.Requests.Select(r => r.Path[r.Path.LastIndexOf('/')..]));
    }

    [Fact]
    public async Task The_request_reaches_bedrock_as_a_signed_converse_call_with_the_profile_id_in_the_path()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ok" };
        var options = new ChatCompletionOptions { Temperature = 1.6f, TopP = 0.9f, StopSequences = { "END", " " } };

        ChatCompletion completion = await Chat().CompleteChatAsync([new SystemChatMessage("You are terse."), new UserChatMessage("Hi")], options);

        Assert.Equal("ok", completion.Content[0].Text);
        var seen = Assert.Single(_upstream.Requests);
        Assert.Equal(Model, seen.Model);
        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=" + AccessKeyId + "/", seen.Headers["authorization"], StringComparison.Ordinal);
        Assert.Contains("/us-east-1/bedrock/aws4_request", seen.Headers["authorization"], StringComparison.Ordinal);
        Assert.True(seen.Headers.ContainsKey("x-amz-date"));
        var body = seen.Json!;
        Assert.Null(body["model"]);
        Assert.Equal("You are terse.", body["system"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("user", body["messages"]![0]!["role"]!.GetValue<string>());
        Assert.Equal("Hi", body["messages"]![0]!["content"]![0]!["text"]!.GetValue<string>());
        var inference = body["inferenceConfig"]!;
        Assert.Equal(1024, inference["maxTokens"]!.GetValue<int>());
        Assert.Equal(1.0, inference["temperature"]!.GetValue<double>());
        Assert.Equal(0.9, inference["topP"]!.GetValue<double>(), 5);
        Assert.Equal(["END"], inference["stopSequences"]!.AsArray().Select(s => s!.GetValue<string>()));
    }

    [Fact]
    public async Task An_inference_profile_arn_works_as_the_model_id_with_its_slash_escaped_and_signed()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Served through the ARN." };

        ChatCompletion completion = await Chat("by-arn").CompleteChatAsync([new UserChatMessage("Hi")]);

        Assert.Equal("Served through the ARN.", completion.Content[0].Text);
        Assert.Equal(ProfileArn, Assert.Single(_upstream.Requests).Model);
    }

    [Fact]
    public async Task A_pdf_goes_up_as_a_named_document_block()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "A one-page PDF." };
        var pdf = Convert.ToBase64String("%PDF-1.4 minimal"u8.ToArray());

        using var response = await _gateway.PostAsync("v1/chat/completions", $$$"""
            {"model":"claude","messages":[{"role":"user","content":[
              {"type":"text","text":"Summarize."},
              {"type":"file","file":{"filename":"Q3 report (final).pdf","file_data":"data:application/pdf;base64,{{{pdf}}}"}}]}]}
            """);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var document = Assert.Single(_upstream.Requests).Json!["messages"]![0]!["content"]![1]!["document"]!;
        Assert.Equal("pdf", document["format"]!.GetValue<string>());
        Assert.Equal("Q3 report (final) pdf", document["name"]!.GetValue<string>());
        Assert.Equal(pdf, document["source"]!["bytes"]!.GetValue<string>());
    }

    [Fact]
    public async Task Parallel_streamed_tool_calls_assemble_into_arguments_that_parse_and_the_results_go_back()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior
        {
            ToolCalls = [new("get_weather", """{"location":"Paris","unit":"celsius"}"""), new("get_time", """{"timezone":"Europe/Paris"}""")],
        };
        var weather = ChatTool.CreateFunctionTool("get_weather", "Weather now", BinaryData.FromString("""{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string"}}}"""));
        var time = ChatTool.CreateFunctionTool("get_time", "Time now", BinaryData.FromString("""{"type":"object","properties":{"timezone":{"type":"string"}}}"""));
        var options = new ChatCompletionOptions { Tools = { weather, time }, ToolChoice = ChatToolChoice.CreateRequiredChoice() };
        List<ChatMessage> conversation = [new UserChatMessage("Weather and time in Paris?")];

        var ids = new Dictionary<int, string>();
        var names = new Dictionary<int, string>();
        var arguments = new Dictionary<int, StringBuilder>();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync(conversation, options))
        {
            foreach (var call in update.ToolCallUpdates)
            {
                if (call.ToolCallId is { } id)
                {
                    ids[call.Index] = id;
                }

                if (call.FunctionName is { } name)
                {
                    names[call.Index] = name;
                }

                var builder = arguments.TryGetValue(call.Index, out var existing) ? existing : arguments[call.Index] = new StringBuilder();
                builder.Append(call.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.Equal(["get_weather", "get_time"], names.OrderBy(n => n.Key).Select(n => n.Value));
        Assert.Equal("Paris", JsonDocument.Parse(arguments[0].ToString()).RootElement.GetProperty("location").GetString());
        Assert.Equal("Europe/Paris", JsonDocument.Parse(arguments[1].ToString()).RootElement.GetProperty("timezone").GetString());
        Assert.All(ids.Values, id => Assert.StartsWith("tooluse_", id, StringComparison.Ordinal));
        var toolConfig = Assert.Single(_upstream.Requests).Json!["toolConfig"]!;
        Assert.Equal(["get_weather", "get_time"], toolConfig["tools"]!.AsArray().Select(t => t!["toolSpec"]!["name"]!.GetValue<string>()));
        Assert.Equal("object", toolConfig["tools"]![0]!["toolSpec"]!["inputSchema"]!["json"]!["type"]!.GetValue<string>());
        Assert.NotNull(toolConfig["toolChoice"]!["any"]);

        // The next turn carries the calls and their results; Converse wants the results in one user turn.
        conversation.Add(new AssistantChatMessage([
            ChatToolCall.CreateFunctionToolCall(ids[0], names[0], BinaryData.FromString(arguments[0].ToString())),
            ChatToolCall.CreateFunctionToolCall(ids[1], names[1], BinaryData.FromString(arguments[1].ToString())),
        ]));
        conversation.Add(new ToolChatMessage(ids[1], "14:05"));
        conversation.Add(new ToolChatMessage(ids[0], "18 degrees and sunny"));
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "It is 18 degrees at 14:05." };
        _upstream.ClearRecorded();

        ChatCompletion answer = await Chat().CompleteChatAsync(conversation, new ChatCompletionOptions { Tools = { weather, time } });

        Assert.Equal("It is 18 degrees at 14:05.", answer.Content[0].Text);
        var messages = Assert.Single(_upstream.Requests).Json!["messages"]!.AsArray();
        Assert.Equal(["user", "assistant", "user"], messages.Select(m => m!["role"]!.GetValue<string>()));
        var uses = messages[1]!["content"]!.AsArray();
        Assert.Equal([ids[0], ids[1]], uses.Select(b => b!["toolUse"]!["toolUseId"]!.GetValue<string>()));
        Assert.Equal("Paris", uses[0]!["toolUse"]!["input"]!["location"]!.GetValue<string>());
        var results = messages[2]!["content"]!.AsArray();
        Assert.Equal([ids[1], ids[0]], results.Select(b => b!["toolResult"]!["toolUseId"]!.GetValue<string>()));
        Assert.Equal("14:05", results[0]!["toolResult"]!["content"]![0]!["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task Images_go_up_as_bytes_and_a_url_gets_a_clear_400_without_any_upstream_call()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "A red dot." };
        var png = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==");

        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage(
            ChatMessageContentPart.CreateTextPart("What is this?"),
            ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(png), "image/png"))]);
        var refused = await Assert.ThrowsAsync<ClientResultException>(() => Chat().CompleteChatAsync([new UserChatMessage(
            ChatMessageContentPart.CreateTextPart("And this?"),
            ChatMessageContentPart.CreateImagePart(new Uri("https://example.com/cat.jpg")))]));

        Assert.Equal("A red dot.", completion.Content[0].Text);
        var content = Assert.Single(_upstream.Requests).Json!["messages"]![0]!["content"]!.AsArray();
        Assert.Equal("What is this?", content[0]!["text"]!.GetValue<string>());
        Assert.Equal("png", content[1]!["image"]!["format"]!.GetValue<string>());
        Assert.Equal(Convert.ToBase64String(png), content[1]!["image"]!["source"]!["bytes"]!.GetValue<string>());
        Assert.Equal(400, refused.Status);
        var error = JsonDocument.Parse(refused.GetRawResponse()!.Content.ToString()).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("image_url_not_supported", error.GetProperty("code").GetString());
        Assert.Contains("inline (base64 or a data: URL)", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_counts_cached_tokens_in_the_prompt_and_cost_prices_cache_reads_and_writes()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Cached answer.", PromptTokens = 1000, CachedTokens = 2000, CacheWriteTokens = 500, CompletionTokens = 100 };

        ChatCompletion whole = await Chat().CompleteChatAsync([new UserChatMessage("Hi")]);
        ChatTokenUsage? streamedUsage = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
        {
            streamedUsage ??= update.Usage;
        }

        // OpenAI's prompt_tokens include cache reads and writes; cached_tokens are the reads.
        Assert.Equal(3500, whole.Usage.InputTokenCount);
        Assert.Equal(2000, whole.Usage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(100, whole.Usage.OutputTokenCount);
        Assert.NotNull(streamedUsage);
        Assert.Equal(3500, streamedUsage.InputTokenCount);
        Assert.Equal(2000, streamedUsage.InputTokenDetails.CachedTokenCount);
        Assert.Equal(100, streamedUsage.OutputTokenCount);

        // 1000 × $3 + 2000 × $0.30 + 500 × $3.75 + 100 × $15, per million tokens, for each of the two requests.
        var row = await UsageRowAsync("sonnet");
        Assert.Equal(2, row.GetProperty("requests").GetInt64());
        Assert.Equal(2 * 0.006975, row.GetProperty("cost_usd").GetDouble(), 9);
        Assert.Equal(4000, row.GetProperty("cached_tokens").GetInt64());
    }

    [Fact]
    public async Task Cost_of_an_inference_profile_follows_the_model_catalog_for_cache_reads_and_writes()
    {
        Assert.True(ModelGateway.Catalog.KnownModels.Shipped.TryFind(Model, out var known));
        var price = known.Pricing!;
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Cached.", PromptTokens = 1000, CachedTokens = 40000, CacheWriteTokens = 2000, CompletionTokens = 300 };

        await Chat("claude-catalog").CompleteChatAsync([new UserChatMessage("Hi")]);

        // Per million tokens: 1,000 uncached input, 40,000 read from the cache, 2,000 written to it, 300 output.
        var expected = ((1000 * price.Input) + (40000 * price.CacheRead!.Value) + (2000 * price.CacheWrite!.Value) + (300 * price.Output!.Value)) / 1_000_000m;
        var row = await UsageRowAsync("sonnet-catalog");
        Assert.Equal((double)expected, row.GetProperty("cost_usd").GetDouble(), 9);
        Assert.True(price.CacheRead < price.Input && price.CacheWrite > price.Input);
    }

    [Fact]
    public async Task Cache_control_marks_on_system_messages_and_tools_become_cache_points()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "ok" };

        using var response = await _gateway.PostAsync("v1/chat/completions", """
            {"model":"claude","messages":[
              {"role":"system","content":[{"type":"text","text":"A long, stable system prompt.","cache_control":{"type":"ephemeral"}}]},
              {"role":"user","content":[{"type":"text","text":"A long document.","cache_control":{"type":"ephemeral"}},{"type":"text","text":"The question."}]}],
             "tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{}}},"cache_control":{"type":"ephemeral"}}]}
            """);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = Assert.Single(_upstream.Requests).Json!;
        var system = body["system"]!.AsArray();
        Assert.Equal("A long, stable system prompt.", system[0]!["text"]!.GetValue<string>());
        Assert.Equal("default", system[1]!["cachePoint"]!["type"]!.GetValue<string>());
        var content = body["messages"]![0]!["content"]!.AsArray();
        Assert.Equal(3, content.Count);
        Assert.Equal("A long document.", content[0]!["text"]!.GetValue<string>());
        Assert.Equal("default", content[1]!["cachePoint"]!["type"]!.GetValue<string>());
        Assert.Equal("The question.", content[2]!["text"]!.GetValue<string>());
        var tools = body["toolConfig"]!["tools"]!.AsArray();
        Assert.Equal("lookup", tools[0]!["toolSpec"]!["name"]!.GetValue<string>());
        Assert.Equal("default", tools[1]!["cachePoint"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task Thinking_comes_back_as_reasoning_content_never_as_content()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "42.", Thinking = "The question asks for the answer; it is 42." };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"claude","reasoning_effort":"low","max_tokens":500,"messages":[{"role":"user","content":"Answer?"}]}""");
        var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("message");
        using var streamed = await _gateway.PostAsync("v1/chat/completions", """{"model":"claude","reasoning_effort":"low","max_tokens":500,"stream":true,"messages":[{"role":"user","content":"Answer?"}]}""");
        var events = await streamed.Content.ReadAsStringAsync();

        Assert.Equal("42.", message.GetProperty("content").GetString());
        Assert.Equal("The question asks for the answer; it is 42.", message.GetProperty("reasoning_content").GetString());
        var sent = _upstream.Requests[0].Json!;
        Assert.Equal("enabled", sent["additionalModelRequestFields"]!["thinking"]!["type"]!.GetValue<string>());
        Assert.Equal(2048, sent["additionalModelRequestFields"]!["thinking"]!["budget_tokens"]!.GetValue<int>());
        Assert.Equal(500 + 2048, sent["inferenceConfig"]!["maxTokens"]!.GetValue<int>());
        var deltas = Chunks(events).Select(c => c.GetProperty("choices")).Where(c => c.GetArrayLength() > 0).Select(c => c[0].GetProperty("delta")).ToList();
        Assert.Equal("The question asks for the answer; it is 42.", string.Concat(deltas.Where(d => d.TryGetProperty("reasoning_content", out _)).Select(d => d.GetProperty("reasoning_content").GetString())));
        Assert.Equal("42.", string.Concat(deltas.Where(d => d.TryGetProperty("content", out _)).Select(d => d.GetProperty("content").GetString())));
    }

    [Fact]
    public async Task A_model_other_than_claude_gets_no_claude_fields_and_an_unclamped_temperature()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Llama here." };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"llama","reasoning_effort":"low","temperature":1.5,"messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sent = Assert.Single(_upstream.Requests).Json!;
        Assert.Null(sent["additionalModelRequestFields"]);
        Assert.Equal(1.5, sent["inferenceConfig"]!["temperature"]!.GetValue<double>());
    }

    [Fact]
    public async Task Json_schema_output_comes_back_as_the_message_text()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { ToolCalls = [new("json_response", """{"city":"Paris","population":2100000}""")] };
        var options = new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("city", BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"},"population":{"type":"integer"}}}""")),
        };

        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Biggest French city?")], options);
        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Biggest French city?")], options))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal("Paris", JsonDocument.Parse(completion.Content[0].Text).RootElement.GetProperty("city").GetString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.Equal(2100000, JsonDocument.Parse(streamed.ToString()).RootElement.GetProperty("population").GetInt32());
        Assert.Equal("json_response", _upstream.Requests[0].Json!["toolConfig"]!["toolChoice"]!["tool"]!["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_reply_cut_at_max_tokens_finishes_with_length()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "one two three four five six seven eight nine ten", ChunkCount = 10 };

        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Count")], new ChatCompletionOptions { MaxOutputTokenCount = 3 });

        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(3, Assert.Single(_upstream.Requests).Json!["inferenceConfig"]!["maxTokens"]!.GetValue<int>());
    }

    [Theory]
    [InlineData(429, "ThrottlingException")]
    [InlineData(503, "ServiceUnavailableException")]
    [InlineData(429, "ModelNotReadyException")]
    [InlineData(500, "InternalServerException")]
    public async Task A_retryable_aws_error_fails_over_to_the_next_deployment(int status, string exception)
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "From the backup." };
        _upstream.SetBehaviorForModel(Primary, new UpstreamBehavior { StatusCode = status, ErrorType = exception });

        ChatCompletion completion = await Chat("failover").CompleteChatAsync([new UserChatMessage("Hi")]);

        Assert.Equal("From the backup.", completion.Content[0].Text);
        Assert.Equal([Primary, Backup], _upstream.Requests.Select(r => r.Model));
    }

    [Fact]
    public async Task A_throttling_exception_in_the_stream_before_any_content_fails_over()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "Streamed from the backup." };
        _upstream.SetBehaviorForModel(Primary, new UpstreamBehavior { Content = "never", Fault = UpstreamFault.ErrorEvent, FaultAfterChunks = 0 });

        var text = new StringBuilder();
        await foreach (var update in Chat("failover").CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.Equal("Streamed from the backup.", text.ToString());
        Assert.Equal([Primary, Backup], _upstream.Requests.Select(r => r.Model));
    }

    [Fact]
    public async Task Client_errors_reach_the_client_in_openai_shape_and_are_not_retried_elsewhere()
    {
        _upstream.Enqueue(Primary, new UpstreamBehavior { StatusCode = 400, ErrorType = "ValidationException", ErrorMessage = "messages.0.content: blank text is not allowed" });
        var invalid = await Assert.ThrowsAsync<ClientResultException>(() => Chat("failover").CompleteChatAsync([new UserChatMessage("Hi")]));
        _upstream.Enqueue(Model, new UpstreamBehavior { StatusCode = 400, ErrorCode = "context_length_exceeded" });
        using var tooLong = await _gateway.PostAsync("v1/chat/completions", """{"model":"claude","messages":[{"role":"user","content":"Hi"}]}""");
        _upstream.Enqueue(Model, new UpstreamBehavior { StatusCode = 403, ErrorType = "AccessDeniedException" });
        using var denied = await _gateway.PostAsync("v1/chat/completions", """{"model":"claude","messages":[{"role":"user","content":"Hi"}]}""");

        Assert.Equal(400, invalid.Status);
        Assert.Contains("blank text is not allowed", invalid.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_upstream.Requests, r => r.Model == Backup);
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        Assert.Equal("context_length_exceeded", (await ErrorAsync(tooLong)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.BadGateway, denied.StatusCode);
        Assert.Equal("upstream_misconfigured", (await ErrorAsync(denied)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Wrong_credentials_get_a_clean_502_and_the_secret_is_nowhere_in_the_body_the_log_or_a_trace()
    {
        using var plain = await _gateway.PostAsync("v1/chat/completions", """{"model":"wrong-key","messages":[{"role":"user","content":"Hi"}]}""");
        using var streamed = await _gateway.PostAsync("v1/chat/completions", """{"model":"wrong-key","stream":true,"messages":[{"role":"user","content":"Hi"}]}""");
        var plainBody = await plain.Content.ReadAsStringAsync();
        var streamedBody = await streamed.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadGateway, plain.StatusCode);
        Assert.Equal("upstream_misconfigured", JsonDocument.Parse(plainBody).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.BadGateway, streamed.StatusCode);

        // The fake refused both signatures: the secret was wrong, not missing.
        Assert.Equal(2, _upstream.RequestCount);
        await _gateway.Logs.WaitForLinesAsync(line => line.Contains("InvalidSignatureException", StringComparison.Ordinal));
        foreach (var secret in (string[])[WrongSecret, SecretAccessKey])
        {
            Assert.DoesNotContain(secret, plainBody, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, streamedBody, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, _gateway.Logs.All, StringComparison.Ordinal);
            Assert.DoesNotContain(_spans, span => span.TagObjects.Any(t => t.Value?.ToString()?.Contains(secret, StringComparison.Ordinal) == true)
                || span.Events.Any(e => e.Tags.Any(t => t.Value?.ToString()?.Contains(secret, StringComparison.Ordinal) == true)));
        }

        Assert.NotEmpty(_spans);
    }

    [Fact]
    public async Task An_exception_mid_stream_breaks_the_stream_visibly()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "This answer will not finish.", ChunkCount = 6, ChunkDelay = TimeSpan.FromMilliseconds(30), Fault = UpstreamFault.ErrorEvent, FaultAfterChunks = 2 };

        var text = new StringBuilder();
        var broken = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await foreach (var update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Hi")]))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }
            }
        });

        Assert.NotEmpty(text.ToString());
        Assert.NotEqual("This answer will not finish.", text.ToString());
        Assert.NotNull(broken);
    }

    [Fact]
    public async Task A_message_whose_checksum_does_not_verify_breaks_the_stream_visibly()
    {
        _upstream.DefaultBehavior = new UpstreamBehavior { Content = "One two three four five six.", ChunkCount = 6, Fault = UpstreamFault.MalformedSseEvent, FaultAfterChunks = 3 };

        using var response = await _gateway.PostAsync("v1/chat/completions", """{"model":"claude","stream":true,"messages":[{"role":"user","content":"Hi"}]}""");
        var events = await ReadUntilBrokenAsync(response);

        Assert.Contains("bad_upstream_response", events, StringComparison.Ordinal);
        Assert.DoesNotContain("[DONE]", events, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Embeddings_on_a_bedrock_route_are_a_clear_400()
    {
        using var response = await _gateway.PostAsync("v1/embeddings", """{"model":"claude","input":"hello"}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("unsupported_operation", (await ErrorAsync(response)).GetProperty("code").GetString());
        Assert.Empty(_upstream.Requests);
    }

    private static async Task<string> ReadUntilBrokenAsync(HttpResponseMessage response)
    {
        var text = new StringBuilder();
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync();
            using var reader = new StreamReader(stream);
            while (await reader.ReadLineAsync() is { } line)
            {
                text.Append(line).Append('\n');
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            // The gateway aborts a broken stream after its in-band error event.
        }

        return text.ToString();
    }

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response)
        => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

    private static IEnumerable<JsonElement> Chunks(string events)
        => events.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Where(e => e.StartsWith("data: {", StringComparison.Ordinal))
            .Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement);

    private async Task<JsonElement> UsageRowAsync(string deployment)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "admin/usage?group_by=deployment");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", MasterKey);
        using var response = await _gateway.Http.SendAsync(request);
        var rows = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("data");
        return rows.EnumerateArray().Single(r => r.GetProperty("deployment").GetString() == deployment);
    }
}
