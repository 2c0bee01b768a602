using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace ModelGateway.Bench.StreamSoak;

/// <summary>
/// Opens <c>--streams</c> slow SSE streams at <c>--ramp-per-second</c>, keeps them all open, and
/// counts how many end with <c>data: [DONE]</c>. A stream that errors, ends without [DONE] or
/// outlives <c>--timeout-seconds</c> counts as dropped.
/// </summary>
internal static class SoakCommand
{
    public static async Task<int> RunAsync(Options options)
    {
        using var client = StreamClient.Create();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(options.TimeoutSeconds));
        var counters = new Counters();
        var errors = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var started = Stopwatch.GetTimestamp();
        var streams = new Task[options.Streams];
        for (var i = 0; i < streams.Length; i++)
        {
            // Paced start: a burst of 10,000 connects at once overflows the listen backlog and turns
            // the soak into a SYN-retry test.
            var due = TimeSpan.FromSeconds((double)i / options.RampPerSecond);
            var wait = due - Stopwatch.GetElapsedTime(started);
            if (wait > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(wait).ConfigureAwait(false);
            }

            streams[i] = RunOneAsync(client, options, counters, errors, deadline.Token);
        }

        await Task.WhenAll(streams).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(started);
        foreach (var (message, count) in errors.OrderByDescending(e => e.Value).Take(5))
        {
            await Console.Error.WriteLineAsync($"  {count} x {message}").ConfigureAwait(false);
        }

        var failed = options.Streams - counters.Done;
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"BENCH requested={options.Streams} done={counters.Done} failed={failed} peak_open={counters.PeakOpen} events={counters.Events} elapsed_s={elapsed.TotalSeconds:F1}"));
        return failed == 0 ? 0 : 1;
    }

    private static async Task RunOneAsync(HttpClient client, Options options, Counters counters, ConcurrentDictionary<string, int> errors, CancellationToken cancellationToken)
    {
        var open = false;
        try
        {
            using var request = StreamClient.ChatStream(options.Url, options.Model, options.ApiKey);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                errors.AddOrUpdate($"HTTP {(int)response.StatusCode}", 1, static (_, n) => n + 1);
                return;
            }

            counters.Opened();
            open = true;
            var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var reader = new StreamReader(body, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 1024);
            string? last = null;
            while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
            {
                if (line.StartsWith("data:", StringComparison.Ordinal))
                {
                    counters.Event();
                    last = line;
                }
            }

            if (last == "data: [DONE]")
            {
                counters.Completed();
            }
            else
            {
                errors.AddOrUpdate("ended without [DONE]", 1, static (_, n) => n + 1);
            }
        }
        catch (Exception ex)
        {
            var message = cancellationToken.IsCancellationRequested ? "timed out" : ex.GetType().Name + ": " + (ex.InnerException?.Message ?? ex.Message);
            errors.AddOrUpdate(message, 1, static (_, n) => n + 1);
        }
        finally
        {
            if (open)
            {
                counters.Closed();
            }
        }
    }

    /// <summary>Thread-safe tallies; the peak of open streams is what the soak is about.</summary>
    private sealed class Counters
    {
        private int _open;
        private int _peakOpen;
        private int _done;
        private long _events;

        public int PeakOpen => Volatile.Read(ref _peakOpen);

        public int Done => Volatile.Read(ref _done);

        public long Events => Interlocked.Read(ref _events);

        public void Opened()
        {
            var now = Interlocked.Increment(ref _open);
            var peak = Volatile.Read(ref _peakOpen);
            while (now > peak)
            {
                var seen = Interlocked.CompareExchange(ref _peakOpen, now, peak);
                if (seen == peak)
                {
                    break;
                }

                peak = seen;
            }
        }

        public void Closed() => Interlocked.Decrement(ref _open);

        public void Completed() => Interlocked.Increment(ref _done);

        public void Event() => Interlocked.Increment(ref _events);
    }
}
