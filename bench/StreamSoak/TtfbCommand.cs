using System.Diagnostics;
using System.Globalization;

namespace ModelGateway.Bench.StreamSoak;

/// <summary>
/// Sends <c>--requests</c> streaming requests one after another on one keep-alive connection and
/// records, for each, the time from sending the request to reading the first <c>data:</c> line.
/// </summary>
internal static class TtfbCommand
{
    private static ReadOnlySpan<byte> DataPrefix => "data:"u8;

    private static ReadOnlySpan<byte> DoneMarker => "data: [DONE]"u8;

    public static async Task<int> RunAsync(Options options)
    {
        using var client = StreamClient.Create();
        var buffer = new byte[64 * 1024];
        var samples = new double[options.Requests];
        var failed = 0;
        for (var i = -options.Warmup; i < options.Requests; i++)
        {
            var microseconds = await MeasureOneAsync(client, options, buffer).ConfigureAwait(false);
            if (microseconds < 0)
            {
                failed++;
            }
            else if (i >= 0)
            {
                samples[i] = microseconds;
            }
        }

        Array.Sort(samples);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"BENCH n={options.Requests} failed={failed} p50_us={Percentile(samples, 50):F1} p90_us={Percentile(samples, 90):F1} p99_us={Percentile(samples, 99):F1} mean_us={samples.Average():F1}"));
        return failed == 0 ? 0 : 1;
    }

    /// <summary>Returns microseconds to the first data line, or -1 when the stream failed or did not end with [DONE].</summary>
    private static async Task<double> MeasureOneAsync(HttpClient client, Options options, byte[] buffer)
    {
        using var request = StreamClient.ChatStream(options.Url, options.Model, options.ApiKey);
        var start = Stopwatch.GetTimestamp();
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            return -1;
        }

        var body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
        double firstEvent = -1;
        var length = 0;
        int read;

        // Whole stream kept in the buffer (a 20-chunk reply is a few KB): enough to find the first
        // event as soon as it lands, and to check the stream ended properly.
        while ((read = await body.ReadAsync(buffer.AsMemory(length)).ConfigureAwait(false)) > 0)
        {
            length += read;
            if (firstEvent < 0 && buffer.AsSpan(0, length).IndexOf(DataPrefix) >= 0)
            {
                firstEvent = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }

            if (length == buffer.Length)
            {
                return -1; // far larger than any reply the harness asks for
            }
        }

        return buffer.AsSpan(0, length).IndexOf(DoneMarker) >= 0 ? firstEvent : -1;
    }

    private static double Percentile(double[] sorted, int percentile)
    {
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(percentile / 100.0 * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }
}
