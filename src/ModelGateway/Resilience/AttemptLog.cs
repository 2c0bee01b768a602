using System.Globalization;
using System.Text;

namespace ModelGateway.Resilience;

/// <summary>
/// One attempt as the access log, the final error and the response headers report it. <c>MidStream</c>:
/// the attempt had answered, then its stream broke; <c>Failure</c> says how.
/// </summary>
internal readonly record struct AttemptRecord(string Deployment, AttemptFailure Failure, int UpstreamStatus, TimeSpan Elapsed, string? Detail, bool MidStream = false);

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

    /// <summary>
    /// Marks the answered attempt of <paramref name="deployment"/> as broken mid-stream. It stays one
    /// attempt: the count is of upstream calls that really happened.
    /// </summary>
    public void MarkBroken(string deployment, AttemptFailure failure, TimeSpan elapsed, string detail)
    {
        lock (_gate)
        {
            for (var i = _count - 1; i >= 0; i--)
            {
                if (_records[i].Failure == AttemptFailure.None && _records[i].Deployment == deployment)
                {
                    _records[i] = new AttemptRecord(deployment, failure, _records[i].UpstreamStatus, elapsed, detail, MidStream: true);
                    return;
                }
            }
        }

        Add(new AttemptRecord(deployment, failure, 200, elapsed, detail, MidStream: true));
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
                _ when record.MidStream => "broke mid-stream (" + (record.Detail ?? record.Failure.ToString()) + ")",
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
