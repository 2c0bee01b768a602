using System.Net.Sockets;
using System.Text;

namespace ModelGateway.Tests.Infrastructure;

/// <summary>
/// HTTP/1.1 over a plain TCP socket: the body goes out byte for byte, as a hostile or broken client
/// would send it, with nothing in between that could fix or refuse it first.
/// </summary>
internal static class RawHttp
{
    public static async Task<(int Status, string Body)> PostAsync(Uri baseAddress, string path, byte[] body, string contentType = "application/json")
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var client = new TcpClient();
        await client.ConnectAsync(baseAddress.Host, baseAddress.Port, timeout.Token);
        await using var stream = client.GetStream();
        var head = $"POST {path} HTTP/1.1\r\nHost: {baseAddress.Authority}\r\nContent-Type: {contentType}\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), timeout.Token);
        await stream.WriteAsync(body, timeout.Token);
        await stream.FlushAsync(timeout.Token);

        // Connection: close, so the response ends when the server closes the socket.
        using var received = new MemoryStream();
        await stream.CopyToAsync(received, timeout.Token);
        var text = Encoding.UTF8.GetString(received.ToArray());
        var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(split > 0, $"no complete HTTP response: {text}");
        var statusLine = text[..text.IndexOf("\r\n", StringComparison.Ordinal)];
        var status = int.Parse(statusLine.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        return (status, text[(split + 4)..]);
    }

    /// <summary>JSON text with raw bytes spliced in where <paramref name="marker"/> stands.</summary>
    public static byte[] WithBytes(string json, byte[] bytes, string marker = "@@")
    {
        var at = json.IndexOf(marker, StringComparison.Ordinal);
        return [.. Encoding.UTF8.GetBytes(json[..at]), .. bytes, .. Encoding.UTF8.GetBytes(json[(at + marker.Length)..])];
    }
}
