using System.Text;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>One server-sent event: its <c>event:</c> name (null when it has none) and its data.</summary>
internal sealed record SseEvent(string? Name, string Data);

/// <summary>
/// Reads a server-sent-events body strictly: an event is an optional <c>event:</c> line, exactly one
/// <c>data: </c> line and a blank line, with LF or CRLF line ends.
/// </summary>
internal sealed class NamedSseReader : IDisposable
{
    private readonly StreamReader _reader;

    private NamedSseReader(Stream stream) => _reader = new StreamReader(stream, Encoding.UTF8);

    public static async Task<NamedSseReader> OpenAsync(HttpResponseMessage response) =>
        new(await response.Content.ReadAsStreamAsync());

    /// <summary>The next event, or null at a clean end of the body.</summary>
    public async Task<SseEvent?> NextAsync(CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(FakeUpstreamTestKit.Generous);
        var line = await _reader.ReadLineAsync(timeout.Token);
        if (line is null)
        {
            return null;
        }

        string? name = null;
        if (line.StartsWith("event: ", StringComparison.Ordinal))
        {
            name = line["event: ".Length..];
            line = await _reader.ReadLineAsync(timeout.Token);
        }

        Assert.NotNull(line);
        Assert.StartsWith("data: ", line, StringComparison.Ordinal);
        var blank = await _reader.ReadLineAsync(timeout.Token);
        Assert.Equal(string.Empty, blank);
        return new SseEvent(name, line["data: ".Length..]);
    }

    /// <summary>All remaining events up to the clean end of the body.</summary>
    public async Task<List<SseEvent>> ReadAllAsync()
    {
        var events = new List<SseEvent>();
        while (await NextAsync() is { } next)
        {
            events.Add(next);
        }

        return events;
    }

    public void Dispose() => _reader.Dispose();
}
