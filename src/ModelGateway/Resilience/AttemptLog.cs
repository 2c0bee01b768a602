using System.Globalization;
using System.Text;

namespace ModelGateway.Resilience;

/// <summary>One attempt as the access log, the final error and the response headers report it.</summary>
internal readonly record struct AttemptRecord(string Deployment, AttemptFailure Failure, int UpstreamStatus, TimeSpan Elapsed, string? Detail);

/// <summary>The attempts of one request, in order. Hedged attempts add to it concurrently.</summary>
internal sealed class AttemptLog
{
    private readonly Lock _gate = new();
    private AttemptRecord[] _records = [];
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public void Add(in AttemptRecord record)
    {
        lock (_gate)
        {
            if (_count == _records.Length)
            {
                Array.Resize(ref _records, Math.Max(4, _count * 2));
            }

            _records[_count++] = record;
        }
    }

    public AttemptRecord[] ToArray()
    {
        lock (_gate)
        {
            return _records.AsSpan(0, _count).ToArray();
        }
    }

    /// <summary>"a: HTTP 503; b: timed out after 30s" for error messages and logs.</summary>
    public string Describe()
    {
        var builder = new StringBuilder();
        foreach (var record in ToArray())
        {
            if (builder.Length > 0)
            {
                builder.Append("; ");
            }

            builder.Append(record.Deployment).Append(": ");
            builder.Append(record.Failure switch
            {
                AttemptFailure.None => "ok",
                AttemptFailure.Timeout => string.Create(CultureInfo.InvariantCulture, $"timed out after {record.Elapsed.TotalSeconds:0.##}s"),
                AttemptFailure.Transport => "unreachable (" + (record.Detail ?? "connection failed") + ")",
                AttemptFailure.BadResponse => "invalid response (" + (record.Detail ?? "not OpenAI's format") + ")",
                _ when record.UpstreamStatus > 0 => string.Create(CultureInfo.InvariantCulture, $"HTTP {record.UpstreamStatus}"),
                _ => record.Detail ?? record.Failure.ToString(),
            });
        }

        return builder.ToString();
    }
}
