using System.Text;
using Amazon.Runtime.EventStreams;
using ModelGateway.Canonical;
using ModelGateway.Providers.Bedrock;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Providers;

/// <summary>
/// The ConverseStream decoder against event streams written by AWSSDK.Core's own message writer, delivered
/// as the network may deliver them: in arbitrary pieces, cut short, or oversized.
/// </summary>
public sealed class BedrockStreamDecoderTests
{
    private static readonly ModelGateway.Configuration.Deployment Deployment = TestDeployments.Create("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0");

    private static byte[] Conversation() => [
        .. Event("messageStart", """{"role":"assistant","p":"abcd"}"""),
        .. Event("contentBlockDelta", """{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Think \u00e9"}},"p":"ab"}"""),
        .. Event("contentBlockDelta", """{"delta":{"reasoningContent":{"signature":"sig-1"}},"contentBlockIndex":0}"""),
        .. Event("contentBlockStop", """{"contentBlockIndex":0}"""),
        .. Event("contentBlockDelta", """{"contentBlockIndex":1,"delta":{"text":"Hello, "}}"""),
        .. Event("contentBlockDelta", """{"contentBlockIndex":1,"delta":{"text":"world \ud83c\udf0d"}}"""),
        .. Event("contentBlockStop", """{"contentBlockIndex":1}"""),
        .. Event("contentBlockStart", """{"start":{"toolUse":{"toolUseId":"tooluse_abc","name":"get_weather"}},"contentBlockIndex":2}"""),
        .. Event("contentBlockDelta", """{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"location\":"}}}"""),
        .. Event("contentBlockDelta", """{"contentBlockIndex":2,"delta":{"toolUse":{"input":"\"Paris\"}"}}}"""),
        .. Event("contentBlockStop", """{"contentBlockIndex":2}"""),
        .. Event("messageStop", """{"stopReason":"tool_use"}"""),
        .. Event("metadata", """{"usage":{"inputTokens":10,"outputTokens":7,"totalTokens":47,"cacheReadInputTokens":20,"cacheWriteInputTokens":10},"metrics":{"latencyMs":5}}"""),
    ];

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(4096)]
    public async Task A_stream_in_any_pieces_decodes_to_the_same_events(int pieceSize)
    {
        using var decoder = new BedrockStreamDecoder(new TrickleStream(Conversation(), pieceSize), Deployment, jsonTool: false, maxMessageBytes: 1 << 20);

        var answer = await DrainAsync(decoder);

        Assert.True(decoder.IsComplete);
        Assert.Equal("Hello, world 🌍", answer.Text.ToString());
        Assert.Equal("Think é", answer.Reasoning.ToString());
        Assert.Equal("sig-1", answer.Signature);
        Assert.Equal(("tooluse_abc", "get_weather"), Assert.Single(answer.Calls));
        Assert.Equal("""{"location":"Paris"}""", answer.Arguments.ToString());
        Assert.Equal(FinishReason.ToolCalls, answer.Finish);
        Assert.Equal(40, answer.Usage.Input);
        Assert.Equal(20, answer.Usage.CacheRead);
        Assert.Equal(10, answer.Usage.CacheWrite);
        Assert.Equal(7, answer.Usage.Output);
    }

    [Fact]
    public async Task A_body_that_ends_inside_a_message_is_never_complete()
    {
        var whole = Conversation();
        using var decoder = new BedrockStreamDecoder(new TrickleStream(whole[..^5], 64), Deployment, jsonTool: false, maxMessageBytes: 1 << 20);

        var answer = await DrainAsync(decoder);

        Assert.False(decoder.IsComplete);
        Assert.Equal(FinishReason.ToolCalls, answer.Finish);
        Assert.False(answer.Usage.Reported);
    }

    [Fact]
    public async Task A_message_larger_than_the_limit_is_refused_before_it_is_buffered()
    {
        var big = Event("contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"" + new string('x', 10_000) + "\"}}");
        using var decoder = new BedrockStreamDecoder(new TrickleStream(big, 4096), Deployment, jsonTool: false, maxMessageBytes: 4096);

        await Assert.ThrowsAsync<InvalidDataException>(() => DrainAsync(decoder));
    }

    [Fact]
    public async Task An_exception_message_becomes_a_classified_error()
    {
        byte[] body = [.. Event("messageStart", """{"role":"assistant"}"""), .. Exception("throttlingException", """{"message":"Too many requests, please wait before trying again."}""")];
        using var decoder = new BedrockStreamDecoder(new TrickleStream(body, 3), Deployment, jsonTool: false, maxMessageBytes: 1 << 20);

        var answer = await DrainAsync(decoder);

        Assert.Equal(UpstreamErrorKind.RateLimited, answer.Error!.Kind);
        Assert.Contains("ThrottlingException", answer.Error.Detail, StringComparison.Ordinal);
    }

    private sealed class Answer
    {
        public StringBuilder Text { get; } = new();
        public StringBuilder Reasoning { get; } = new();
        public StringBuilder Arguments { get; } = new();
        public List<(string Id, string Name)> Calls { get; } = [];
        public string? Signature { get; set; }
        public FinishReason Finish { get; set; }
        public TokenUsage Usage { get; set; }
        public UpstreamError? Error { get; set; }
    }

    private static async Task<Answer> DrainAsync(BedrockStreamDecoder decoder)
    {
        var answer = new Answer();
        while (true)
        {
            while (decoder.TryRead(out var e))
            {
                var text = Encoding.UTF8.GetString(e.Utf8.Span);
                switch (e.Kind)
                {
                    case StreamEventKind.TextDelta:
                        answer.Text.Append(text);
                        break;
                    case StreamEventKind.ReasoningDelta:
                        answer.Reasoning.Append(text);
                        break;
                    case StreamEventKind.ReasoningSignature:
                        answer.Signature = text;
                        break;
                    case StreamEventKind.ToolCallStart:
                        answer.Calls.Add((e.Id!, e.Name!));
                        break;
                    case StreamEventKind.ToolCallDelta:
                        answer.Arguments.Append(text);
                        break;
                    case StreamEventKind.Finish:
                        answer.Finish = e.Finish;
                        break;
                    case StreamEventKind.Usage:
                        answer.Usage = e.Usage;
                        break;
                    case StreamEventKind.Error:
                        answer.Error = e.Error;
                        break;
                }
            }

            if (decoder.IsComplete || !await decoder.FillAsync(CancellationToken.None))
            {
                return answer;
            }
        }
    }

    private static byte[] Event(string type, string json) => Message(json, (":event-type", type), (":content-type", "application/json"), (":message-type", "event"));

    private static byte[] Exception(string type, string json) => Message(json, (":exception-type", type), (":content-type", "application/json"), (":message-type", "exception"));

    private static byte[] Message(string json, params (string Name, string Value)[] headers)
    {
        var list = new List<IEventStreamHeader>();
        foreach (var (name, value) in headers)
        {
            var header = new EventStreamHeader(name);
            header.SetString(value);
            list.Add(header);
        }

        return new EventStreamMessage(list, Encoding.UTF8.GetBytes(json)).ToByteArray();
    }

    /// <summary>A body that hands out at most <c>pieceSize</c> bytes per read, as a slow network does.</summary>
    private sealed class TrickleStream(byte[] data, int pieceSize) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var take = Math.Min(Math.Min(pieceSize, buffer.Length), data.Length - _position);
            data.AsSpan(_position, take).CopyTo(buffer);
            _position += take;
            return take;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => new(Read(buffer.Span));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
