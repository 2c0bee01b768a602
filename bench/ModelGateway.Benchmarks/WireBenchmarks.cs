using System.Text;
using BenchmarkDotNet.Attributes;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Benchmarks;

/// <summary>Reading a request body and extracting <c>model</c>, as the intake does for every request.</summary>
[MemoryDiagnoser]
public class RequestParsingBenchmarks
{
    private byte[] _body = [];

    /// <summary>About 250 bytes (a one-line chat) and 16 KB (a long conversation).</summary>
    [Params(250, 16_384)]
    public int BodyBytes { get; set; }

    [GlobalSetup]
    public void Setup() => _body = Encoding.UTF8.GetBytes(BodyBytes <= 300 ? BenchDeployments.ChatBody : BenchPayloads.ChatRequest(BodyBytes));

    [Benchmark]
    public int ParseAndExtractModel()
    {
        RequestParser.TryParse(_body, Operation.ChatCompletions, 64, out var info, out _);
        Span<char> model = stackalloc char[RequestParser.MaxModelNameLength];
        RequestModel.TryCopy(_body, info, model, out var written);
        return written + info.MessageCount;
    }
}

/// <summary>Usage extraction from a non-streamed chat completion (done on every non-streamed answer).</summary>
[MemoryDiagnoser]
public class UsageExtractionBenchmarks
{
    [Benchmark]
    public long InspectNonStreamedBody()
    {
        ResponseInspector.TryInspect(BenchPayloads.ChatCompletion, out var facts);
        return facts.Usage.Input + facts.Usage.Output;
    }
}

/// <summary>
/// The relay's parsing work over a 20-chunk stream held in memory: split the SSE events with
/// <see cref="SseReader"/> and inspect each with <see cref="ResponseInspector.TryInspect"/>. No
/// network and no writes to the client: this is the CPU the gateway adds per stream on top of copying.
/// </summary>
[MemoryDiagnoser]
public class SseRelayBenchmarks
{
    private byte[][] _events = [];
    private byte[] _whole = [];

    /// <summary>True: one event per read, as a token-by-token upstream delivers them. False: the whole stream in one read.</summary>
    [Params(true, false)]
    public bool EventPerRead { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _events = BenchPayloads.ChatStreamEvents(20);
        _whole = [.. _events.SelectMany(e => e)];
    }

    [Benchmark]
    public async Task<long> ReadAndInspect20ChunkStream()
    {
        Stream source = EventPerRead ? new EventStream(_events) : new MemoryStream(_whole, writable: false);
        using var reader = new SseReader(source, 4 * 1024 * 1024);
        long output = 0;
        while (await reader.ReadEventAsync(CancellationToken.None).ConfigureAwait(false))
        {
            if (reader.IsDone)
            {
                break;
            }

            if (ResponseInspector.TryInspect(reader.Data, out var facts) && facts.HasUsage)
            {
                output += facts.Usage.Output;
            }
        }

        return output;
    }

    /// <summary>A read-only stream that returns one pre-split event per read, synchronously.</summary>
    private sealed class EventStream(byte[][] events) : Stream
    {
        private int _next;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_next == events.Length)
            {
                return 0;
            }

            var next = events[_next++];
            next.CopyTo(buffer); // every event is far smaller than the reader's buffer
            return next.Length;
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
