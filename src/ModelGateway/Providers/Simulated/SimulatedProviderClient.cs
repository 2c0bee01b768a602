using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using ModelGateway.Configuration;
using ModelGateway.Routing;
using ModelGateway.Wire;

namespace ModelGateway.Providers.Simulated;

/// <summary>
/// An in-process model server with no network and no keys: configurable time to first token,
/// tokens per second, output length, error rate, concurrency capacity and scheduled outages.
/// It answers in OpenAI's exact wire format, so the demo, newcomers and benchmarks can watch
/// routing, spillover and failover without a provider account.
/// </summary>
internal sealed class SimulatedProviderClient : IProviderClient
{
    private static readonly string[] Words =
    [
        "The", "gateway", "routed", "this", "request", "to", "a", "simulated", "deployment", "which", "streams",
        "tokens", "at", "a", "steady", "pace", "so", "that", "routing", "latency", "and", "failover", "can", "be",
        "seen", "without", "any", "provider", "keys", "or", "network", "calls", "at", "all",
    ];

    private readonly ProviderEndpoint _provider;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, SemaphoreSlim> _capacity = new(StringComparer.Ordinal);

    public SimulatedProviderClient(ProviderEndpoint provider, TimeProvider timeProvider)
    {
        _provider = provider;
        _timeProvider = timeProvider;
    }

    public async ValueTask<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var deployment = request.Deployment;
        var settings = deployment.Simulation ?? _provider.Simulation ?? SimulationDefaults.Settings;
        var now = _timeProvider.GetUtcNow();
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

        SemaphoreSlim? slot = null;
        if (settings.Concurrency is { } concurrency)
        {
            // A saturated server queues: the wait shows up as time to first token, as with vLLM.
            slot = GetSlots(deployment.Name, concurrency);
            await slot.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        var pipe = new Pipe();
        var run = new SimulatedRun(pipe, slot);
        var plan = new Plan(request, settings, _timeProvider);
        run.Start(static (plan, writer, token) => plan.WriteAsync(writer, token), plan);
        var contentType = request.Request.Info.Stream ? "text/event-stream; charset=utf-8" : "application/json";
        return UpstreamResponse.FromStream(200, contentType, pipe.Reader.AsStream(), run);
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
        return UpstreamResponse.FromStream(status, "application/json", new MemoryStream(buffer.WrittenSpan.ToArray()),
            retryAfter: status == 429 ? TimeSpan.FromSeconds(1) : null);
    }

    /// <summary>Produces one response into a pipe on a background task and stops when the reader goes away.</summary>
    private sealed class SimulatedRun(Pipe pipe, SemaphoreSlim? slot) : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private Task _producer = Task.CompletedTask;

        public void Start(Func<Plan, PipeWriter, CancellationToken, Task> write, Plan plan)
        {
            _producer = Task.Run(async () =>
            {
                try
                {
                    await write(plan, pipe.Writer, _stop.Token).ConfigureAwait(false);
                    await pipe.Writer.CompleteAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is OperationCanceledException or InvalidOperationException or IOException)
                {
                    await pipe.Writer.CompleteAsync(ex).ConfigureAwait(false);
                }
            });
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            await pipe.Reader.CompleteAsync().ConfigureAwait(false);
            await _producer.ConfigureAwait(false);
            slot?.Release();
            _stop.Dispose();
        }
    }

    /// <summary>What one simulated response says and how fast it says it.</summary>
    private sealed class Plan(UpstreamRequest request, SimulationSettings settings, TimeProvider timeProvider)
    {
        public async Task WriteAsync(PipeWriter writer, CancellationToken cancellationToken)
        {
            var info = request.Request.Info;
            var model = request.Deployment.UpstreamModel;
            var created = timeProvider.GetUtcNow().ToUnixTimeSeconds();
            var id = "chatcmpl-sim" + Guid.NewGuid().ToString("N")[..20];
            var promptTokens = TokenEstimator.Estimate(info);
            var outputTokens = Math.Max(1, Math.Min(settings.OutputTokens, info.MaxTokens ?? int.MaxValue));

            // A continuation resumes the same deterministic text after the words already sent.
            var skip = request.IsContinuation ? CountWords(request.PrefillJson.Span) : 0;
            var perToken = settings.TokensPerSecond > 0 ? TimeSpan.FromSeconds(1 / settings.TokensPerSecond) : TimeSpan.Zero;

            await Task.Delay(settings.Ttft, timeProvider, cancellationToken).ConfigureAwait(false);
            switch (request.Request.Operation)
            {
                case Operation.Embeddings:
                    WriteEmbeddings(writer, model, info, settings.EmbeddingDimensions, promptTokens);
                    await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
                    return;
                case Operation.ChatCompletions or Operation.Completions when !info.Stream:
                    var total = perToken * outputTokens;
                    if (total > TimeSpan.Zero)
                    {
                        await Task.Delay(total, timeProvider, cancellationToken).ConfigureAwait(false);
                    }

                    WriteCompletion(writer, request.Request.Operation, id, created, model, Text(skip, outputTokens), promptTokens, outputTokens - Math.Min(skip, outputTokens), info.N);
                    await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
                    return;
            }

            var chat = request.Request.Operation == Operation.ChatCompletions;
            var includeUsage = info.IncludeUsage == true || request.AskForStreamUsage;
            if (chat)
            {
                WriteEvent(writer, json => WriteChunkStart(json, id, created, model, includeUsage, role: true, content: string.Empty, finish: null));
                await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            var produced = 0;
            for (var i = skip; i < outputTokens; i++)
            {
                var word = (i == 0 ? string.Empty : " ") + Words[i % Words.Length];
                WriteEvent(writer, json => WriteChunkStart(json, id, created, model, includeUsage, role: false, content: word, finish: null, chat));
                await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
                produced++;
                if (perToken > TimeSpan.Zero && i + 1 < outputTokens)
                {
                    await Task.Delay(perToken, timeProvider, cancellationToken).ConfigureAwait(false);
                }
            }

            var reason = outputTokens < settings.OutputTokens ? "length" : "stop";
            WriteEvent(writer, json => WriteChunkStart(json, id, created, model, includeUsage, role: false, content: null, finish: reason, chat));
            if (includeUsage)
            {
                WriteEvent(writer, json =>
                {
                    WriteChunkHeader(json, id, created, model, chat);
                    json.WriteStartArray("choices"u8);
                    json.WriteEndArray();
                    WriteUsage(json, promptTokens, produced);
                    json.WriteEndObject();
                });
            }

            writer.Write("data: [DONE]\n\n"u8);
            await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
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

        private static void WriteEvent(PipeWriter writer, Action<Utf8JsonWriter> write)
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

        private static void WriteCompletion(PipeWriter writer, Operation operation, string id, long created, string model, string text, long promptTokens, int outputTokens, int n)
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

        private static void WriteEmbeddings(PipeWriter writer, string model, RequestInfo info, int dimensions, long promptTokens)
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
