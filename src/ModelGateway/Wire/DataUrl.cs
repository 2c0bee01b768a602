namespace ModelGateway.Wire;

/// <summary>RFC 2397 <c>data:</c> URLs, as clients send inline images and files.</summary>
internal static class DataUrl
{
    /// <summary>Splits <c>data:image/png;base64,AAAA</c> into its media type and base64 payload.</summary>
    public static bool TryParse(string? url, out string mediaType, out string base64)
    {
        mediaType = string.Empty;
        base64 = string.Empty;
        if (url is null || !url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var comma = url.IndexOf(',', StringComparison.Ordinal);
        if (comma < 0)
        {
            return false;
        }

        var header = url.AsSpan(5, comma - 5);
        if (!header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        mediaType = header[..^7].ToString();
        if (mediaType.Length == 0)
        {
            mediaType = "application/octet-stream";
        }

        base64 = url[(comma + 1)..];
        return true;
    }
}
