using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ModelGateway.Tests.Protocols.Anthropic;

/// <summary>
/// An OpenAI-compatible server on loopback that answers chat completions with scripted chunk streams:
/// what the fake upstream's OpenAI wire does not produce (parallel tool calls, <c>reasoning_content</c>),
/// exactly as vLLM and OpenAI stream them. It records every request body.
/// </summary>
internal sealed class ScriptedOpenAIUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<string> _replies = new();
    private readonly ConcurrentQueue<JsonNode> _requests = new();

    private ScriptedOpenAIUpstream(WebApplication app) => _app = app;

    public string BaseUrl { get; private set; } = string.Empty;

    public IReadOnlyList<JsonNode> Requests => [.. _requests];

    public static async Task<ScriptedOpenAIUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var upstream = new ScriptedOpenAIUpstream(app);
        app.MapPost("/v1/chat/completions", upstream.AnswerAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        upstream.BaseUrl = address + "/v1";
        return upstream;
    }

    /// <summary>Decides the answer from the request (null: the queue, then the default); for clients that make calls of their own.</summary>
    public Func<JsonNode, string?>? Responder { get; set; }

    /// <summary>Queues the next answer: SSE <c>data:</c> lines, or a JSON body.</summary>
    public void Enqueue(string reply) => _replies.Enqueue(reply);

    /// <summary>One <c>chat.completion.chunk</c> event with <paramref name="delta"/> (JSON) and an optional finish reason.</summary>
    public static string Chunk(string delta, string? finish = null)
        => "data: {\"id\":\"chatcmpl-scripted\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"scripted\",\"choices\":[{\"index\":0,\"delta\":"
            + delta + ",\"finish_reason\":" + (finish is null ? "null" : "\"" + finish + "\"") + "}]}\n\n";

    public static string Usage(int prompt, int completion)
        => $$$"""data: {"id":"chatcmpl-scripted","object":"chat.completion.chunk","created":1,"model":"scripted","choices":[],"usage":{"prompt_tokens":{{{prompt}}},"completion_tokens":{{{completion}}},"total_tokens":{{{prompt + completion}}}}}""" + "\n\n";

    public const string Done = "data: [DONE]\n\n";

    /// <summary>Two parallel tool calls, their arguments streamed in pieces, as OpenAI streams them.</summary>
    public static string ParallelToolCalls(params (string Id, string Name, string Arguments)[] calls)
    {
        var stream = new StringBuilder(Chunk("""{"role":"assistant","content":null}"""));
        for (var i = 0; i < calls.Length; i++)
        {
            var (id, name, arguments) = calls[i];
            stream.Append(Chunk($$$"""{"tool_calls":[{"index":{{{i}}},"id":"{{{id}}}","type":"function","function":{"name":"{{{name}}}","arguments":""}}]}"""));
            var half = arguments.Length / 2;
            foreach (var piece in new[] { arguments[..half], arguments[half..] })
            {
                stream.Append(Chunk($$$"""{"tool_calls":[{"index":{{{i}}},"function":{"arguments":{{{JsonSerializer.Serialize(piece)}}}}}]}"""));
            }
        }

        return stream.Append(Chunk("{}", "tool_calls")).Append(Usage(50, 20)).Append(Done).ToString();
    }

    private async Task AnswerAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var request = JsonNode.Parse(await reader.ReadToEndAsync())!;
        _requests.Enqueue(request);
        var stream = request["stream"]?.GetValue<bool>() == true;
        var reply = Responder?.Invoke(request) is { } decided ? decided
            : _replies.TryDequeue(out var next) ? next
            : stream ? Chunk("""{"role":"assistant","content":"scripted"}""") + Chunk("{}", "stop") + Done
            : """{"id":"chatcmpl-scripted","object":"chat.completion","created":1,"model":"scripted","choices":[{"index":0,"message":{"role":"assistant","content":"scripted"},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":1,"total_tokens":31}}""";
        context.Response.ContentType = reply.StartsWith("data:", StringComparison.Ordinal) ? "text/event-stream" : "application/json";
        await context.Response.WriteAsync(reply);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
