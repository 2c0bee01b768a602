using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Providers.Media;
using ModelGateway.Providers.OpenAI;
using ModelGateway.Routing;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Simulated;

/// <summary>
/// An in-process model server with no network and no keys: configurable time to first token,
/// tokens per second, output length, error rate, concurrency capacity and scheduled outages.
/// It answers in OpenAI's exact wire format, so the demo, newcomers and benchmarks can watch
/// routing, spillover and failover without a provider account. Its answer is a stream produced as
/// it is read, on the relay's own loop: no task or pipe per request.
/// </summary>
internal sealed class SimulatedAdapter : OpenAIWireAdapter
{
    private static readonly string[] Words =
    [
        "The", "gateway", "routed", "this", "request", "to", "a", "simulated", "deployment", "which", "streams",
        "tokens", "at", "a", "steady", "pace", "so", "that", "routing", "latency", "and", "failover", "can", "be",
        "seen", "without", "any", "provider", "keys", "or", "network", "calls", "at", "all",
    ];

    private readonly ProviderEndpoint _provider;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, SemaphoreSlim> _capacity = new(StringComparer.Ordinal);

    private readonly IMediaFetcher _mediaFetcher;

    public SimulatedAdapter(ProviderEndpoint provider, TimeProvider timeProvider, GatewayOptions options, IMediaFetcher mediaFetcher)
        : base(timeProvider, options)
    {
        _provider = provider;
        _mediaFetcher = mediaFetcher;
    }

    public override async ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var deployment = request.Deployment;
        var settings = deployment.Simulation ?? _provider.Simulation ?? SimulationDefaults.Settings;
        var now = TimeProvider.GetUtcNow();
        foreach (var outage in settings.Outages)
        {
            if (outage.IsActive(now))
            {
                return Error(outage.Status, "The simulated deployment is in a scheduled outage.");
            }
        }

        if (settings.ErrorRate > 0 && Random.Shared.NextDouble() < settings.ErrorRate)
        {
            return Error(settings.ErrorStatus, "The simulated deployment failed this request (configured error rate).");
        }

        if (!deployment.TakesMediaUrls && request.Request.Info.MediaUrlCount > 0)
        {
            // Like Bedrock or Gemini (simulate.takesMediaUrls: false): the bytes are needed, so they are fetched or refused.
            await FetchImagesAsync(request, cancellationToken).ConfigureAwait(false);
        }

        SemaphoreSlim? slot = null;
        if (settings.Concurrency is { } concurrency)
        {
            // A saturated server queues: the wait shows up as time to first token, as with vLLM.
            slot = GetSlots(deployment.Name, concurrency);
            await slot.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        var body = new SimulatedBody(new Plan(request, settings, TimeProvider), slot, TimeProvider);
        var contentType = request.Stream ? "text/event-stream; charset=utf-8" : "application/json";
        return UpstreamResponse.FromStream(200, contentType, body);
    }

    private async ValueTask FetchImagesAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        foreach (var message in request.Request.Canonical.Messages)
        {
            foreach (var part in message.Parts)
            {
                if (part is ImagePart { IsInline: false, Url: { } url })
                {
                    _ = await _mediaFetcher.FetchAsync(url, MediaKind.Image, request.Deployment, cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    private SemaphoreSlim GetSlots(string deployment, int concurrency)
    {
        lock (_gate)
        {
            if (!_capacity.TryGetValue(deployment, out var slots))
            {
                slots = new SemaphoreSlim(concurrency, concurrency);
                _capacity[deployment] = slots;
            }

            return slots;
        }
    }

    private static UpstreamResponse Error(int status, string message)
    {
        var error = new ApiError(status, message, status == 429 ? "requests" : "server_error", status == 429 ? "rate_limit_exceeded" : null);
        var buffer = new ArrayBufferWriter<byte>(256);
        error.WriteJson(buffer);
        HttpResponseMessage? headers = null;
        if (status == 429)
        {
            headers = new HttpResponseMessage();
            headers.Headers.TryAddWithoutValidation("retry-after", "1");
        }

        return UpstreamResponse.FromStream(status, "application/json", new MemoryStream(buffer.WrittenSpan.ToArray()), headers: headers?.Headers);
    }

    /// <summary>
    /// The answer as a readable stream: each read waits until the next event is due (first token,
    /// then one token per tick) and returns it. Disposing it frees the capacity slot.
    /// </summary>
    private sealed class SimulatedBody(Plan plan, SemaphoreSlim? slot, TimeProvider timeProvider) : Stream
    {
        private readonly ArrayBufferWriter<byte> _pending = new(512);
        private int _offset;
        private int _released;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (_offset == _pending.WrittenCount)
            {
                _pending.ResetWrittenCount();
                _offset = 0;
                if (plan.Finished)
                {
                    return 0;
                }

                var delay = plan.NextDelay();
                if (delay > TimeSpan.Zero)
                {
                    await Task.Delay(delay, timeProvider, cancellationToken).ConfigureAwait(false);
                }

                plan.WriteNext(_pending);
            }

            var take = Math.Min(buffer.Length, _pending.WrittenCount - _offset);
            _pending.WrittenSpan.Slice(_offset, take).CopyTo(buffer.Span);
            _offset += take;
            return take;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                slot?.Release();
            }

            base.Dispose(disposing);
        }
    }

    /// <summary>What one simulated response says and how fast it says it, one event at a time.</summary>
    private sealed class Plan
    {
        private readonly UpstreamRequest _request;
        private readonly SimulationSettings _settings;
        private readonly string _id;
        private readonly long _created;
        private readonly string _model;
        private readonly long _promptTokens;
        private readonly int _outputTokens;
        private readonly int _skip;
        private readonly TimeSpan _perToken;
        private readonly bool _chat;
        private readonly bool _includeUsage;
        private int _step;
        private int _token;
        private int _produced;

        public Plan(UpstreamRequest request, SimulationSettings settings, TimeProvider timeProvider)
        {
            _request = request;
            _settings = settings;
            var info = request.Request.Info;
            _model = request.Deployment.UpstreamModel;
            _created = timeProvider.GetUtcNow().ToUnixTimeSeconds();
            _id = "chatcmpl-sim" + Guid.NewGuid().ToString("N")[..20];
            _promptTokens = TokenEstimator.Estimate(info);
            _outputTokens = Math.Max(1, Math.Min(settings.OutputTokens, info.MaxTokens ?? int.MaxValue));

            // A continuation resumes the same deterministic text after the words already sent.
            _skip = request.IsContinuation ? CountWords(request.PrefillJson.Span) : 0;
            _token = _skip;
            _perToken = settings.TokensPerSecond > 0 ? TimeSpan.FromSeconds(1 / settings.TokensPerSecond) : TimeSpan.Zero;
            _chat = request.Request.Operation == Operation.ChatCompletions;
            _includeUsage = info.IncludeUsage == true || request.AskForStreamUsage || !request.PassThrough;
        }

        public bool Finished { get; private set; }

        /// <summary>How long to wait before the next event.</summary>
        public TimeSpan NextDelay()
        {
            var info = _request.Request.Info;
            if (_step == 0)
            {
                // Time to first token; a whole (non-streamed) answer also waits for all its tokens.
                var wait = _settings.Ttft;
                if (!info.Stream && _request.Request.Operation != Operation.Embeddings)
                {
                    wait += _perToken * _outputTokens;
                }

                return wait;
            }

            // Tokens after the first arrive one per tick; the role chunk and the end follow at once.
            return _step == 2 && _token > _skip && _token < _outputTokens ? _perToken : TimeSpan.Zero;
        }

        public void WriteNext(IBufferWriter<byte> writer)
        {
            var info = _request.Request.Info;
            var operation = _request.Request.Operation;
            if (operation == Operation.Embeddings)
            {
                WriteEmbeddings(writer, _model, info, _settings.EmbeddingDimensions, _promptTokens);
                Finished = true;
                return;
            }

            if (!info.Stream)
            {
                WriteCompletion(writer, operation, _id, _created, _model, Text(_skip, _outputTokens), _promptTokens, _outputTokens - Math.Min(_skip, _outputTokens), info.N);
                Finished = true;
                return;
            }

            if (_step == 0)
            {
                _step = 1;
                if (_chat)
                {
                    WriteEvent(writer, json => WriteChunkStart(json, _id, _created, _model, _includeUsage, role: true, content: string.Empty, finish: null));
                    return;
                }
            }

            _step = 2;
            if (_token < _outputTokens)
            {
                var word = (_token == 0 ? string.Empty : " ") + Words[_token % Words.Length];
                WriteEvent(writer, json => WriteChunkStart(json, _id, _created, _model, _includeUsage, role: false, content: word, finish: null, _chat));
                _token++;
                _produced++;
                return;
            }

            var reason = _outputTokens < _settings.OutputTokens ? "length" : "stop";
            WriteEvent(writer, json => WriteChunkStart(json, _id, _created, _model, _includeUsage, role: false, content: null, finish: reason, _chat));
            if (_includeUsage)
            {
                WriteEvent(writer, json =>
                {
                    WriteChunkHeader(json, _id, _created, _model, _chat);
                    json.WriteStartArray("choices"u8);
                    json.WriteEndArray();
                    WriteUsage(json, _promptTokens, _produced);
                    json.WriteEndObject();
                });
            }

            writer.Write("data: [DONE]\n\n"u8);
            Finished = true;
        }

        private static int CountWords(ReadOnlySpan<byte> prefillJson)
        {
            var count = 0;
            var inWord = false;
            foreach (var b in prefillJson)
            {
                var isLetter = b is not ((byte)' ' or (byte)'"');
                if (isLetter && !inWord)
                {
                    count++;
                }

                inWord = isLetter;
            }

            return count;
        }

        private static string Text(int skip, int count)
        {
            var builder = new System.Text.StringBuilder(count * 8);
            for (var i = skip; i < count; i++)
            {
                if (i > 0)
                {
                    builder.Append(' ');
                }

                builder.Append(Words[i % Words.Length]);
            }

            return builder.ToString();
        }

        private static void WriteEvent(IBufferWriter<byte> writer, Action<Utf8JsonWriter> write)
        {
            writer.Write("data: "u8);
            using (var json = new Utf8JsonWriter(writer, JsonOutput.Options))
            {
                write(json);
            }

            writer.Write("\n\n"u8);
        }

        private static void WriteChunkHeader(Utf8JsonWriter json, string id, long created, string model, bool chat)
        {
            json.WriteStartObject();
            json.WriteString("id"u8, id);
            json.WriteString("object"u8, chat ? "chat.completion.chunk"u8 : "text_completion"u8);
            json.WriteNumber("created"u8, created);
            json.WriteString("model"u8, model);
        }

        private static void WriteChunkStart(Utf8JsonWriter json, string id, long created, string model, bool includeUsage, bool role, string? content, string? finish, bool chat = true)
        {
            WriteChunkHeader(json, id, created, model, chat);
            json.WriteStartArray("choices"u8);
            json.WriteStartObject();
            json.WriteNumber("index"u8, 0);
            if (chat)
            {
                json.WriteStartObject("delta"u8);
                if (role)
                {
                    json.WriteString("role"u8, "assistant"u8);
                }

                if (content is not null)
                {
                    json.WriteString("content"u8, content);
                }

                json.WriteEndObject();
            }
            else
            {
                json.WriteString("text"u8, content ?? string.Empty);
            }

            json.WriteNull("logprobs"u8);
            if (finish is null)
            {
                json.WriteNull("finish_reason"u8);
            }
            else
            {
                json.WriteString("finish_reason"u8, finish);
            }

            json.WriteEndObject();
            json.WriteEndArray();
            if (includeUsage)
            {
                json.WriteNull("usage"u8);
            }

            json.WriteEndObject();
        }

        private static void WriteCompletion(IBufferWriter<byte> writer, Operation operation, string id, long created, string model, string text, long promptTokens, int outputTokens, int n)
        {
            using var json = new Utf8JsonWriter(writer, JsonOutput.Options);
            var chat = operation == Operation.ChatCompletions;
            json.WriteStartObject();
            json.WriteString("id"u8, chat ? id : "cmpl" + id[8..]);
            json.WriteString("object"u8, chat ? "chat.completion"u8 : "text_completion"u8);
            json.WriteNumber("created"u8, created);
            json.WriteString("model"u8, model);
            json.WriteStartArray("choices"u8);
            for (var i = 0; i < n; i++)
            {
                json.WriteStartObject();
                json.WriteNumber("index"u8, i);
                if (chat)
                {
                    json.WriteStartObject("message"u8);
                    json.WriteString("role"u8, "assistant"u8);
                    json.WriteString("content"u8, text);
                    json.WriteNull("refusal"u8);
                    json.WriteEndObject();
                }
                else
                {
                    json.WriteString("text"u8, text);
                }

                json.WriteNull("logprobs"u8);
                json.WriteString("finish_reason"u8, "stop"u8);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            WriteUsage(json, promptTokens, outputTokens * n);
            json.WriteEndObject();
        }

        private static void WriteEmbeddings(IBufferWriter<byte> writer, string model, RequestInfo info, int dimensions, long promptTokens)
        {
            using var json = new Utf8JsonWriter(writer, JsonOutput.Options);
            json.WriteStartObject();
            json.WriteString("object"u8, "list"u8);
            json.WriteStartArray("data"u8);
            var random = new Random(model.Length + (int)info.TextBytes);
            for (var i = 0; i < Math.Max(1, info.InputCount); i++)
            {
                json.WriteStartObject();
                json.WriteString("object"u8, "embedding"u8);
                json.WriteNumber("index"u8, i);
                json.WriteStartArray("embedding"u8);
                var scale = 1 / Math.Sqrt(dimensions);
                for (var d = 0; d < dimensions; d++)
                {
                    json.WriteNumberValue(Math.Round((random.NextDouble() * 2 - 1) * scale, 6));
                }

                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteString("model"u8, model);
            json.WriteStartObject("usage"u8);
            json.WriteNumber("prompt_tokens"u8, promptTokens);
            json.WriteNumber("total_tokens"u8, promptTokens);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        private static void WriteUsage(Utf8JsonWriter json, long promptTokens, long outputTokens)
        {
            json.WriteStartObject("usage"u8);
            json.WriteNumber("prompt_tokens"u8, promptTokens);
            json.WriteNumber("completion_tokens"u8, outputTokens);
            json.WriteNumber("total_tokens"u8, promptTokens + outputTokens);
            json.WriteStartObject("prompt_tokens_details"u8);
            json.WriteNumber("cached_tokens"u8, 0);
            json.WriteEndObject();
            json.WriteEndObject();
        }
    }
}

/// <summary>What a simulated deployment does when the file gives no <c>simulate</c> settings.</summary>
internal static class SimulationDefaults
{
    public static readonly SimulationSettings Settings = new(
        Ttft: TimeSpan.FromMilliseconds(200),
        TokensPerSecond: 50,
        OutputTokens: 40,
        ErrorRate: 0,
        ErrorStatus: 500,
        Concurrency: null,
        EmbeddingDimensions: 256,
        Outages: []);
}
