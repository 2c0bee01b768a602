using System.Globalization;
using System.Net;
using ModelGateway.Configuration;

namespace ModelGateway.Providers.Media;

/// <summary>
/// A deployment's compiled <c>mediaFetch</c>: what the gateway may download for it. There is no
/// setting for plain http, for following redirects without checking them, or for skipping the
/// address check: those are never allowed. Immutable; a reload compiles a new one.
/// </summary>
internal sealed class MediaFetchPolicy
{
    public const long DefaultMaxBytes = 20 * 1024 * 1024;
    public const long MaxMaxBytes = 100 * 1024 * 1024;
    public const int MaxMaxRedirects = 5;
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromMinutes(1);

    private static readonly IPAddress[] MetadataAddresses = [IPAddress.Parse("169.254.169.254"), IPAddress.Parse("fd00:ec2::254")];

    /// <summary>Exact host names (lower case, IDN as punycode) and <c>.suffix</c>es from <c>*.suffix</c>; null: any host.</summary>
    public required string[]? AllowedHosts { get; init; }

    public required int[] AllowedPorts { get; init; }

    /// <summary>Addresses an admin allowed although they are in a special range (a private image store).</summary>
    public required System.Net.IPNetwork[] AllowedNetworks { get; init; }

    public required long MaxBytes { get; init; }

    public required TimeSpan Timeout { get; init; }

    public required int MaxRedirects { get; init; }

    /// <summary>Whether a URL's host may be fetched from; <paramref name="host"/> is lower case, IPv6 without brackets.</summary>
    public bool AllowsHost(string host)
    {
        if (AllowedHosts is null)
        {
            return true;
        }

        foreach (var allowed in AllowedHosts)
        {
            // "*.example.com" is stored as ".example.com": any name under it, never example.com itself.
            if (allowed[0] == '.'
                ? host.Length > allowed.Length && host.EndsWith(allowed, StringComparison.Ordinal)
                : host.Equals(allowed, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    public bool AllowsPort(int port) => Array.IndexOf(AllowedPorts, port) >= 0;

    /// <summary>Null when the address may be dialled; otherwise the special range that refuses it.</summary>
    public string? Refuses(IPAddress address)
    {
        address = SpecialAddresses.Normalize(address);
        if (SpecialAddresses.RangeOf(address) is not { } range)
        {
            return null;
        }

        foreach (var network in AllowedNetworks)
        {
            if (network.Contains(address))
            {
                return null;
            }
        }

        return range;
    }

    /// <summary>
    /// Checks and compiles a <c>mediaFetch</c> entry, every problem with its path. Null when the entry
    /// is absent or says <c>enabled: false</c>: the deployment then gets nothing fetched.
    /// </summary>
    public static MediaFetchPolicy? Compile(MediaFetchDocument? document, string path, List<ConfigError> errors, List<ConfigError> warnings)
    {
        if (document is null)
        {
            return null;
        }

        var failed = errors.Count;
        var hosts = CompileHosts(document.AllowedHosts, path + ".allowedHosts", errors);
        int[] ports = [443];
        if (document.AllowedPorts is { } portList)
        {
            if (portList.Count == 0)
            {
                errors.Add(new(path + ".allowedPorts", "list at least one port, or leave it out for 443"));
            }

            for (var i = 0; i < portList.Count; i++)
            {
                if (portList[i] is < 1 or > 65535)
                {
                    errors.Add(new($"{path}.allowedPorts[{i}]", "must be a TCP port (1-65535)"));
                }
            }

            ports = [.. portList.Distinct()];
        }

        var networks = CompileNetworks(document.AllowedAddresses, path + ".allowedAddresses", errors, warnings);
        var maxBytes = document.MaxBytes ?? DefaultMaxBytes;
        if (maxBytes is < 1 or > MaxMaxBytes)
        {
            errors.Add(new(path + ".maxBytes", $"must be between 1 and {MaxMaxBytes} (100 MiB)"));
        }

        var timeout = DefaultTimeout;
        if (document.Timeout is { } timeoutText)
        {
            if (!Durations.TryParse(timeoutText, out timeout))
            {
                errors.Add(new(path + ".timeout", $"'{timeoutText}' is not a duration (e.g. 800ms, 30s, 5m, 1h)"));
            }
            else if (timeout <= TimeSpan.Zero || timeout > MaxTimeout)
            {
                errors.Add(new(path + ".timeout", "must be longer than 0 and at most 1m"));
            }
        }

        var redirects = document.MaxRedirects ?? 0;
        if (redirects is < 0 or > MaxMaxRedirects)
        {
            errors.Add(new(path + ".maxRedirects", $"must be between 0 and {MaxMaxRedirects}"));
        }

        if (document.Enabled == false || errors.Count > failed)
        {
            return null;
        }

        return new MediaFetchPolicy
        {
            AllowedHosts = hosts,
            AllowedPorts = ports,
            AllowedNetworks = networks,
            MaxBytes = maxBytes,
            Timeout = timeout,
            MaxRedirects = redirects,
        };
    }

    private static string[]? CompileHosts(List<string>? hosts, string path, List<ConfigError> errors)
    {
        if (hosts is null)
        {
            return null;
        }

        if (hosts.Count == 0)
        {
            errors.Add(new(path, "list at least one host, or leave it out to allow any public host"));
        }

        var result = new List<string>(hosts.Count);
        for (var i = 0; i < hosts.Count; i++)
        {
            var entry = hosts[i]?.Trim() ?? string.Empty;
            var entryPath = $"{path}[{i}]";
            var wildcard = entry.StartsWith("*.", StringComparison.Ordinal);
            var name = wildcard ? entry[2..] : entry;
            if (name.StartsWith('[') && name.EndsWith(']'))
            {
                name = name[1..^1];
            }

            if (entry == "*")
            {
                errors.Add(new(entryPath, "'*' allows every host: leave allowedHosts out instead"));
                continue;
            }

            if (name.Contains('*', StringComparison.Ordinal) || name.Contains('/', StringComparison.Ordinal) || Uri.CheckHostName(name) == UriHostNameType.Unknown
                || (wildcard && Uri.CheckHostName(name) != UriHostNameType.Dns))
            {
                errors.Add(new(entryPath, $"'{entry}' is not a host name, an IP address or '*.' followed by a domain (no scheme, port or path)"));
                continue;
            }

            string normal;
            try
            {
                // The same form the fetcher compares: lower case, internationalized names as punycode.
                normal = Uri.CheckHostName(name) == UriHostNameType.Dns ? new IdnMapping().GetAscii(name).ToLowerInvariant() : IPAddress.Parse(name).ToString();
            }
            catch (ArgumentException)
            {
                errors.Add(new(entryPath, $"'{entry}' is not a valid host name"));
                continue;
            }

            result.Add(wildcard ? "." + normal : normal);
        }

        return [.. result];
    }

    private static System.Net.IPNetwork[] CompileNetworks(List<string>? entries, string path, List<ConfigError> errors, List<ConfigError> warnings)
    {
        if (entries is null)
        {
            return [];
        }

        var result = new List<System.Net.IPNetwork>(entries.Count);
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i]?.Trim() ?? string.Empty;
            var entryPath = $"{path}[{i}]";
            System.Net.IPNetwork network;
            if (IPAddress.TryParse(entry, out var single) && !entry.Contains('/', StringComparison.Ordinal))
            {
                single = SpecialAddresses.Normalize(single);
                network = new System.Net.IPNetwork(single, single.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
            }
            else if (!System.Net.IPNetwork.TryParse(entry, out network))
            {
                errors.Add(new(entryPath, $"'{entry}' is not an IP address or a CIDR range (e.g. 10.20.0.0/16)"));
                continue;
            }

            if (network.PrefixLength == 0)
            {
                errors.Add(new(entryPath, $"'{entry}' allows every address: name the ranges the images are served from"));
                continue;
            }

            foreach (var metadata in MetadataAddresses)
            {
                if (network.Contains(metadata))
                {
                    warnings.Add(new(entryPath, $"'{entry}' includes {metadata}, the cloud instance metadata service: clients could read its credentials through an image URL"));
                }
            }

            result.Add(network);
        }

        return [.. result];
    }
}
