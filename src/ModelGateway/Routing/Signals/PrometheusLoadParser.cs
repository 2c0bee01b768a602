using System.Globalization;

namespace ModelGateway.Routing.Signals;

/// <summary>
/// Reads the load figures of vLLM, TGI and SGLang out of a Prometheus text exposition: one pass over the
/// lines, no allocation per line. Counts are summed across label sets (one server may expose several
/// models); a KV-cache fraction is the largest of them, as the fullest pool is the one that queues.
/// </summary>
internal static class PrometheusLoadParser
{
    private enum Figure : byte
    {
        None,
        Waiting,
        Running,
        KvUsage,
    }

    /// <summary>Parses a scrape; false when none of the known metrics is in it (not a supported server).</summary>
    public static bool TryParse(ReadOnlySpan<char> text, long scrapedAtUnixMs, out LoadReading reading)
    {
        double waiting = 0, running = 0, kv = 0;
        bool sawCount = false, sawKv = false;
        foreach (var range in text.Split('\n'))
        {
            var line = text[range].Trim();
            if (line.IsEmpty || line[0] == '#')
            {
                continue;
            }

            var nameEnd = line.IndexOfAny('{', ' ', '\t');
            if (nameEnd <= 0)
            {
                continue;
            }

            var figure = Classify(line[..nameEnd]);
            if (figure == Figure.None)
            {
                continue;
            }

            var rest = line[nameEnd..];
            if (rest[0] == '{')
            {
                // Label values may hold spaces or braces inside quotes; the value starts after the closing brace.
                var close = ClosingBrace(rest);
                if (close < 0)
                {
                    continue;
                }

                rest = rest[(close + 1)..];
            }

            rest = rest.TrimStart();
            var valueEnd = rest.IndexOfAny(' ', '\t');
            var value = valueEnd < 0 ? rest : rest[..valueEnd];
            if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) || !double.IsFinite(number))
            {
                continue;
            }

            switch (figure)
            {
                case Figure.Waiting:
                    waiting += number;
                    sawCount = true;
                    break;
                case Figure.Running:
                    running += number;
                    sawCount = true;
                    break;
                default:
                    kv = Math.Max(kv, number);
                    sawKv = true;
                    break;
            }
        }

        reading = new LoadReading(waiting, running, sawKv ? kv : null, scrapedAtUnixMs);
        return sawCount || sawKv;
    }

    private static Figure Classify(ReadOnlySpan<char> name) => name switch
    {
        "vllm:num_requests_waiting" or "tgi_queue_size" or "sglang:num_queue_reqs" => Figure.Waiting,
        "vllm:num_requests_running" or "tgi_batch_current_size" or "sglang:num_running_reqs" => Figure.Running,
        "vllm:kv_cache_usage_perc" or "vllm:gpu_cache_usage_perc" or "sglang:token_usage" => Figure.KvUsage,
        _ => Figure.None,
    };

    private static int ClosingBrace(ReadOnlySpan<char> labels)
    {
        var quoted = false;
        for (var i = 1; i < labels.Length; i++)
        {
            var c = labels[i];
            if (quoted)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == '}')
            {
                return i;
            }
        }

        return -1;
    }
}
