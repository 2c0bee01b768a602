namespace ModelGateway.Providers.Media;

/// <summary>
/// What a fetched URL may be. An image part takes raster images only, recognised by their first bytes
/// (the server's Content-Type must say image/ too); a document part takes what the providers that need
/// bytes accept. SVG is refused: it is a script-capable document, and no such provider takes it.
/// </summary>
internal static class MediaTypes
{
    public const string ImageList = "PNG, JPEG, GIF, WebP, HEIC or HEIF";

    private static readonly string[] Documents =
    [
        "application/pdf", "text/plain", "text/csv", "text/markdown", "text/html",
        "application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ];

    /// <summary>Whether the server's declared type may be read on for this kind of part.</summary>
    public static bool IsAcceptable(string? declared, MediaKind kind)
    {
        if (declared is null)
        {
            return false;
        }

        return kind == MediaKind.Image
            ? declared.StartsWith("image/", StringComparison.OrdinalIgnoreCase) && !declared.Equals("image/svg+xml", StringComparison.OrdinalIgnoreCase)
            : Array.Exists(Documents, d => d.Equals(declared, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>What the bytes are, for an image part: their real type, whatever the server said, or null when they are no image a provider takes.</summary>
    public static string? SniffImage(ReadOnlySpan<byte> bytes)
    {
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]))
        {
            return "image/png";
        }

        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF]))
        {
            return "image/jpeg";
        }

        if (bytes.StartsWith("GIF87a"u8) || bytes.StartsWith("GIF89a"u8))
        {
            return "image/gif";
        }

        if (bytes.Length >= 12 && bytes.StartsWith("RIFF"u8) && bytes[8..12].SequenceEqual("WEBP"u8))
        {
            return "image/webp";
        }

        if (bytes.Length >= 12 && bytes[4..8].SequenceEqual("ftyp"u8))
        {
            var brand = bytes[8..12];
            if (brand.SequenceEqual("heic"u8) || brand.SequenceEqual("heix"u8) || brand.SequenceEqual("heim"u8) || brand.SequenceEqual("heis"u8))
            {
                return "image/heic";
            }

            if (brand.SequenceEqual("mif1"u8) || brand.SequenceEqual("msf1"u8) || brand.SequenceEqual("heif"u8))
            {
                return "image/heif";
            }
        }

        return null;
    }

    /// <summary>Whether a document's bytes agree with the type declared for them, where the type has a signature.</summary>
    public static bool DocumentMatches(string declared, ReadOnlySpan<byte> bytes)
        => !declared.Equals("application/pdf", StringComparison.OrdinalIgnoreCase) || bytes.StartsWith("%PDF-"u8);
}
