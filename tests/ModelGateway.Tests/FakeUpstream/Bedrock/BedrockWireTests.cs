using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream.Bedrock;

/// <summary>Byte-level checks of the Bedrock wire: event-stream framing and CRCs, stream faults, paths and unsigned requests.</summary>
public sealed class BedrockWireTests
{
    private static HttpRequestMessage Converse(string rawModelId, bool stream)
    {
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["text"] = "Say hello" }) }),
        };
        return new HttpRequestMessage(HttpMethod.Post, $"/model/{rawModelId}/{(stream ? "converse-stream" : "converse")}")
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
    }

    /// <summary>Decodes event-stream messages, checking both CRCs of each; stops at the first bad one.</summary>
    private static List<(Dictionary<string, string> Headers, string Payload, bool CrcOk)> Decode(byte[] bytes)
    {
        var messages = new List<(Dictionary<string, string>, string, bool)>();
        var at = 0;
        while (at < bytes.Length)
        {
            var span = bytes.AsSpan(at);
            var total = (int)BinaryPrimitives.ReadUInt32BigEndian(span);
            var headerLength = (int)BinaryPrimitives.ReadUInt32BigEndian(span[4..]);
            Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(span[8..]), Crc32(span[..8]));
            var crcOk = BinaryPrimitives.ReadUInt32BigEndian(span[(total - 4)..]) == Crc32(span[..(total - 4)]);
            var headers = new Dictionary<string, string>();
            var h = 12;
            while (h < 12 + headerLength)
            {
                var name = Encoding.UTF8.GetString(span.Slice(h + 1, span[h]));
                h += 1 + span[h];
                Assert.Equal(7, span[h]); // string
                var length = BinaryPrimitives.ReadUInt16BigEndian(span[(h + 1)..]);
                headers[name] = Encoding.UTF8.GetString(span.Slice(h + 3, length));
                h += 3 + length;
            }

            messages.Add((headers, Encoding.UTF8.GetString(span[(12 + headerLength)..(total - 4)]), crcOk));
            at += total;
        }

        return messages;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
            }
        }

        return ~crc;
    }

    [Fact]
    public async Task Converse_stream_is_framed_event_messages_with_valid_crcs()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.DefaultBehavior = new UpstreamBehavior { ChunkCount = 2 };
        using var http = NewClient(server);

        using var response = await SendAsync(http, Converse("amazon.nova-pro-v1%3A0", stream: true));
        var messages = Decode(await response.Content.ReadAsByteArrayAsync());

        Assert.Equal("application/vnd.amazon.eventstream", response.Content.Headers.ContentType!.MediaType);
        Assert.True(response.Headers.Contains("x-amzn-RequestId"));
        Assert.All(messages, m => Assert.True(m.CrcOk));
        Assert.All(messages, m => Assert.Equal(("event", "application/json"), (m.Headers[":message-type"], m.Headers[":content-type"])));
        Assert.Equal(
            ["messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"],
            messages.Select(m => m.Headers[":event-type"]));
        var metadata = JsonNode.Parse(messages[^1].Payload)!;
        Assert.Equal(["usage", "metrics", "p"], metadata.AsObject().Select(p => p.Key));
        Assert.Equal(["inputTokens", "outputTokens", "totalTokens"], metadata["usage"]!.AsObject().Select(p => p.Key));
        Assert.Equal("amazon.nova-pro-v1:0", Assert.Single(server.Requests).Model);
    }

    [Fact]
    public async Task Stream_faults_corrupt_omit_or_end_with_an_exception_message()
    {
        await using var server = await FakeUpstreamServer.StartAsync();
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.MalformedSseEvent, FaultAfterChunks = 1 });
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.OmitDone });
        server.Enqueue(new UpstreamBehavior { Fault = UpstreamFault.ErrorEvent, FaultAfterChunks = 1, ErrorType = "ServiceUnavailableException" });
        using var http = NewClient(server);

        async Task<List<(Dictionary<string, string> Headers, string Payload, bool CrcOk)>> MessagesAsync()
        {
            using var response = await SendAsync(http, Converse("anthropic.claude-3-haiku-20240307-v1%3A0", stream: true));
            return Decode(await response.Content.ReadAsByteArrayAsync());
        }

        var malformed = await MessagesAsync();
        var omitted = await MessagesAsync();
        var failed = await MessagesAsync();

        Assert.False(malformed[2].CrcOk);
        Assert.True(malformed[^1].CrcOk);
        Assert.Equal("messageStop", omitted[^1].Headers[":event-type"]);
        var exception = failed[^1];
        Assert.Equal(("exception", "serviceUnavailableException"), (exception.Headers[":message-type"], exception.Headers[":exception-type"]));
        Assert.Equal("Bedrock is unable to process your request.", JsonNode.Parse(exception.Payload)!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Errors_name_the_exception_in_x_amzn_error_type_and_arn_model_ids_decode()
    {
        const string Arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0";
        await using var server = await FakeUpstreamServer.StartAsync();
        server.SetBehaviorForModel(Arn, new UpstreamBehavior { StatusCode = 429, ErrorType = "ModelNotReadyException" });
        using var http = NewClient(server);

        using var response = await SendAsync(http, Converse(Uri.EscapeDataString(Arn), stream: false));
        var json = await ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.StartsWith("ModelNotReadyException:", response.Headers.GetValues("x-amzn-ErrorType").Single(), StringComparison.Ordinal);
        Assert.Equal(["message"], PropertyNames(json));
        Assert.Equal(Arn, Assert.Single(server.Requests).Model);
    }

    [Fact]
    public async Task Unsigned_request_is_refused_when_credentials_are_configured()
    {
        await using var server = await FakeUpstreamServer.StartAsync(new FakeUpstreamOptions { AwsCredentials = new("AKIAEXAMPLE", "secret") });
        using var http = NewClient(server);

        using var response = await SendAsync(http, Converse("anthropic.claude-3-haiku-20240307-v1%3A0", stream: false));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.StartsWith("MissingAuthenticationTokenException:", response.Headers.GetValues("x-amzn-ErrorType").Single(), StringComparison.Ordinal);
    }
}
