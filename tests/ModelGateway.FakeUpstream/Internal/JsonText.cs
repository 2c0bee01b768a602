using System.Text;
using System.Text.Json;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>
/// JSON string literals with only the escapes JSON requires (quote, backslash, control characters), so
/// non-ASCII text, emoji included, goes out as raw UTF-8 the way OpenAI sends it. System.Text.Json's
/// encoders always escape characters outside the Basic Multilingual Plane, hence this small encoder.
/// </summary>
internal static class JsonText
{
    private static ReadOnlySpan<byte> HexDigits => "0123456789abcdef"u8;

    /// <summary>The quoted JSON literal for <paramref name="value"/>, as UTF-8.</summary>
    public static byte[] Encode(string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        var extra = 2;
        foreach (var b in utf8)
        {
            if (b == '"' || b == '\\')
            {
                extra += 1;
            }
            else if (b < 0x20)
            {
                extra += b is (byte)'\n' or (byte)'\r' or (byte)'\t' or (byte)'\b' or (byte)'\f' ? 1 : 5;
            }
        }

        var result = new byte[utf8.Length + extra];
        var i = 0;
        result[i++] = (byte)'"';
        foreach (var b in utf8)
        {
            switch (b)
            {
                case (byte)'"':
                case (byte)'\\':
                    result[i++] = (byte)'\\';
                    result[i++] = b;
                    break;
                case (byte)'\n':
                    result[i++] = (byte)'\\';
                    result[i++] = (byte)'n';
                    break;
                case (byte)'\r':
                    result[i++] = (byte)'\\';
                    result[i++] = (byte)'r';
                    break;
                case (byte)'\t':
                    result[i++] = (byte)'\\';
                    result[i++] = (byte)'t';
                    break;
                case (byte)'\b':
                    result[i++] = (byte)'\\';
                    result[i++] = (byte)'b';
                    break;
                case (byte)'\f':
                    result[i++] = (byte)'\\';
                    result[i++] = (byte)'f';
                    break;
                case < 0x20:
                    result[i++] = (byte)'\\';
                    result[i++] = (byte)'u';
                    result[i++] = (byte)'0';
                    result[i++] = (byte)'0';
                    result[i++] = HexDigits[b >> 4];
                    result[i++] = HexDigits[b & 0xF];
                    break;
                default:
                    result[i++] = b;
                    break;
            }
        }

        result[i] = (byte)'"';
        return result;
    }

    public static byte[][] Encode(string[] values)
    {
        var encoded = new byte[values.Length][];
        for (var i = 0; i < values.Length; i++)
        {
            encoded[i] = Encode(values[i]);
        }

        return encoded;
    }

    /// <summary>Writes a property whose value was encoded by <see cref="Encode(string)"/>.</summary>
    public static void Write(Utf8JsonWriter writer, ReadOnlySpan<byte> name, byte[] encoded)
    {
        writer.WritePropertyName(name);
        writer.WriteRawValue(encoded, skipInputValidation: true);
    }
}
