using System.Text;

namespace ModelGateway.FakeUpstream.Internal.Wires;

/// <summary>Server-sent-event framing: one <c>data:</c> line per event, with an <c>event:</c> line where the wire names events.</summary>
internal static class Sse
{
    public const string ContentType = "text/event-stream; charset=utf-8";

    /// <summary><c>event: {name}\ndata: {json}\n\n</c></summary>
    public static byte[] Event(string name, ReadOnlySpan<byte> json)
    {
        var nameBytes = Encoding.ASCII.GetBytes(name);
        var bytes = new byte[7 + nameBytes.Length + 7 + json.Length + 2];
        var span = bytes.AsSpan();
        "event: "u8.CopyTo(span);
        nameBytes.CopyTo(span[7..]);
        var at = 7 + nameBytes.Length;
        "\ndata: "u8.CopyTo(span[at..]);
        json.CopyTo(span[(at + 7)..]);
        "\n\n"u8.CopyTo(span[(at + 7 + json.Length)..]);
        return bytes;
    }

    /// <summary><c>data: {json}\n\n</c>, or with CRLF line ends as Google's front ends write them.</summary>
    public static byte[] Data(ReadOnlySpan<byte> json, bool crlf = false)
    {
        var end = crlf ? "\r\n\r\n"u8 : "\n\n"u8;
        var bytes = new byte[6 + json.Length + end.Length];
        "data: "u8.CopyTo(bytes);
        json.CopyTo(bytes.AsSpan(6));
        end.CopyTo(bytes.AsSpan(6 + json.Length));
        return bytes;
    }
}
