using System.Buffers.Binary;
using System.Text;

namespace ModelGateway.FakeUpstream.Internal.Bedrock;

/// <summary>
/// The binary <c>application/vnd.amazon.eventstream</c> framing: a prelude (total length, headers length, prelude
/// CRC32), string headers, the payload, then the CRC32 of everything before it. All integers are big-endian.
/// </summary>
internal static class EventStream
{
    public const string ContentType = "application/vnd.amazon.eventstream";

    private const byte StringHeaderType = 7;

    private static readonly uint[] CrcTable = BuildCrcTable();

    /// <summary>An <c>event</c> message: <c>:event-type</c>, <c>:content-type: application/json</c>, <c>:message-type: event</c>.</summary>
    public static byte[] Event(string eventType, ReadOnlySpan<byte> json) =>
        Message([(":event-type", eventType), (":content-type", "application/json"), (":message-type", "event")], json);

    /// <summary>An <c>exception</c> message: <c>:exception-type</c> names the modelled exception, the payload holds its message.</summary>
    public static byte[] Exception(string exceptionType, ReadOnlySpan<byte> json) =>
        Message([(":exception-type", exceptionType), (":content-type", "application/json"), (":message-type", "exception")], json);

    public static byte[] Message(IReadOnlyList<(string Name, string Value)> headers, ReadOnlySpan<byte> payload)
    {
        var headerLength = 0;
        foreach (var (name, value) in headers)
        {
            headerLength += 1 + Encoding.UTF8.GetByteCount(name) + 1 + 2 + Encoding.UTF8.GetByteCount(value);
        }

        var total = 12 + headerLength + payload.Length + 4;
        var message = new byte[total];
        var span = message.AsSpan();
        BinaryPrimitives.WriteUInt32BigEndian(span, (uint)total);
        BinaryPrimitives.WriteUInt32BigEndian(span[4..], (uint)headerLength);
        BinaryPrimitives.WriteUInt32BigEndian(span[8..], Crc32(span[..8]));
        var at = 12;
        foreach (var (name, value) in headers)
        {
            var nameLength = Encoding.UTF8.GetBytes(name, span[(at + 1)..]);
            span[at] = (byte)nameLength;
            at += 1 + nameLength;
            span[at++] = StringHeaderType;
            var valueLength = Encoding.UTF8.GetBytes(value, span[(at + 2)..]);
            BinaryPrimitives.WriteUInt16BigEndian(span[at..], (ushort)valueLength);
            at += 2 + valueLength;
        }

        payload.CopyTo(span[at..]);
        at += payload.Length;
        BinaryPrimitives.WriteUInt32BigEndian(span[at..], Crc32(span[..at]));
        return message;
    }

    /// <summary>A copy of <paramref name="message"/> whose message CRC is wrong: framed right, but it does not verify.</summary>
    public static byte[] Corrupt(byte[] message)
    {
        var copy = (byte[])message.Clone();
        copy[^1] ^= 0xFF;
        return copy;
    }

    /// <summary>CRC-32 (IEEE 802.3, as zlib computes it).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return ~crc;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (var n = 0u; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
