using System.Globalization;

namespace ModelGateway.Configuration;

/// <summary>Parses the routing file's durations: <c>800ms</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>, <c>1m30s</c>.</summary>
internal static class Durations
{
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var span = text.AsSpan().Trim();
        var total = TimeSpan.Zero;
        while (!span.IsEmpty)
        {
            var digits = 0;
            while (digits < span.Length && (char.IsAsciiDigit(span[digits]) || span[digits] == '.'))
            {
                digits++;
            }

            if (digits == 0 || !double.TryParse(span[..digits], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
            {
                return false;
            }

            span = span[digits..];
            var unitLength = 0;
            while (unitLength < span.Length && char.IsAsciiLetter(span[unitLength]))
            {
                unitLength++;
            }

            var unit = span[..unitLength];
            TimeSpan part;
            if (unit.SequenceEqual("ms"))
            {
                part = TimeSpan.FromMilliseconds(amount);
            }
            else if (unit.SequenceEqual("s"))
            {
                part = TimeSpan.FromSeconds(amount);
            }
            else if (unit.SequenceEqual("m"))
            {
                part = TimeSpan.FromMinutes(amount);
            }
            else if (unit.SequenceEqual("h"))
            {
                part = TimeSpan.FromHours(amount);
            }
            else
            {
                return false;
            }

            total += part;
            span = span[unitLength..];
        }

        value = total;
        return true;
    }

    public static string Format(TimeSpan value) => value switch
    {
        { TotalMilliseconds: < 1000 } => $"{value.TotalMilliseconds:0}ms",
        { TotalSeconds: < 120 } => $"{value.TotalSeconds:0.###}s",
        _ => $"{value.TotalMinutes:0.###}m",
    };
}
