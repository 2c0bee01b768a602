using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using ModelGateway.Forwarding;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Providers;
using ModelGateway.Tests.Infrastructure;
using ModelGateway.Wire;

namespace ModelGateway.Tests.Forwarding;

/// <summary>The upstream body is the client's body with surgical edits, still valid JSON.</summary>
public sealed class UpstreamBodyTests
{
    private static string Build(string json, bool askUsage = false, string upstreamModel = "upstream-id", string? prefill = null)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var request = new GatewayRequest(new DefaultHttpContext(), OpenAIChatProtocol.Instance, Operation.ChatCompletions, "req", 0);
        var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(bytes.Length);
        bytes.CopyTo(rented, 0);
        request.SetBody(rented, bytes.Length);
        Assert.True(RequestParser.TryParse(request.Body, Operation.ChatCompletions, 64, out request.Info, out _));
        var deployment = TestDeployments.Create("d", upstreamModel);
        var call = new UpstreamRequest(request, deployment, passThrough: true)
        {
            AskForStreamUsage = askUsage,
            PrefillJson = prefill is null ? default : JsonSerializer.SerializeToUtf8Bytes(prefill),
        };
        var result = Encoding.UTF8.GetString(UpstreamBody.ForOpenAI(call).ToArray());
        using var valid = JsonDocument.Parse(result);
        return result;
    }

    [Fact]
    public void Only_the_model_changes()
    {
        Assert.Equal("""{"model":"upstream-id","messages":[{"role":"user","content":"hi"}],"x":1}""",
            Build("""{"model":"alias","messages":[{"role":"user","content":"hi"}],"x":1}"""));
    }

    [Fact]
    public void Usage_is_requested_for_streams_in_every_shape_of_stream_options()
    {
        Assert.Equal("""{"stream_options":{"include_usage":true},"model":"upstream-id","stream":true,"messages":[{"role":"user","content":"x"}]}""",
            Build("""{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}""", askUsage: true));
        Assert.Contains("\"stream_options\":{\"include_usage\":true}", Build("""{"model":"m","stream":true,"stream_options":{},"messages":[{"role":"user","content":"x"}]}""", askUsage: true), StringComparison.Ordinal);
        Assert.Contains("\"stream_options\":{\"include_usage\":true,\"x\":1}", Build("""{"model":"m","stream":true,"stream_options":{"x":1},"messages":[{"role":"user","content":"x"}]}""", askUsage: true), StringComparison.Ordinal);
        Assert.Contains("\"include_usage\":true", Build("""{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}""", askUsage: true), StringComparison.Ordinal);
    }

    [Fact]
    public void A_continuation_appends_the_prefill_as_the_final_assistant_message()
    {
        var body = Build("""{"model":"m","stream":true,"messages":[{"role":"user","content":"Tell me"}]}""", prefill: "Once upon a \"time\"");

        using var json = JsonDocument.Parse(body);
        var messages = json.RootElement.GetProperty("messages");
        Assert.Equal(2, messages.GetArrayLength());
        Assert.Equal("assistant", messages[1].GetProperty("role").GetString());
        Assert.Equal("Once upon a \"time\"", messages[1].GetProperty("content").GetString());
        Assert.True(json.RootElement.GetProperty("continue_final_message").GetBoolean());
        Assert.False(json.RootElement.GetProperty("add_generation_prompt").GetBoolean());
    }
}
