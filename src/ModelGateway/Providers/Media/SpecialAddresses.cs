using System.Net;
using System.Net.Sockets;

namespace ModelGateway.Providers.Media;

/// <summary>
/// The addresses the gateway never dials for a client's URL unless an admin allows that address
/// explicitly: everything that is not plain public unicast. Loopback, private, link-local (cloud
/// metadata at 169.254.169.254), carrier-grade NAT, multicast, IPv6 unique-local, and the other
/// special-purpose ranges of IANA's registries. An IPv4 address inside IPv6 (mapped, NAT64) is
/// judged as the IPv4 address it reaches.
/// </summary>
internal static class SpecialAddresses
{
    private static readonly (System.Net.IPNetwork Network, string Name)[] V4 =
    [
        (System.Net.IPNetwork.Parse("0.0.0.0/8"), "this network (0.0.0.0/8)"),
        (System.Net.IPNetwork.Parse("10.0.0.0/8"), "private (10.0.0.0/8)"),
        (System.Net.IPNetwork.Parse("100.64.0.0/10"), "carrier-grade NAT (100.64.0.0/10)"),
        (System.Net.IPNetwork.Parse("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
        (System.Net.IPNetwork.Parse("169.254.0.0/16"), "link-local (169.254.0.0/16, cloud metadata)"),
        (System.Net.IPNetwork.Parse("172.16.0.0/12"), "private (172.16.0.0/12)"),
        (System.Net.IPNetwork.Parse("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)"),
        (System.Net.IPNetwork.Parse("192.0.2.0/24"), "documentation (192.0.2.0/24)"),
        (System.Net.IPNetwork.Parse("192.88.99.0/24"), "6to4 relay (192.88.99.0/24)"),
        (System.Net.IPNetwork.Parse("192.168.0.0/16"), "private (192.168.0.0/16)"),
        (System.Net.IPNetwork.Parse("198.18.0.0/15"), "benchmarking (198.18.0.0/15)"),
        (System.Net.IPNetwork.Parse("198.51.100.0/24"), "documentation (198.51.100.0/24)"),
        (System.Net.IPNetwork.Parse("203.0.113.0/24"), "documentation (203.0.113.0/24)"),
        (System.Net.IPNetwork.Parse("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
        (System.Net.IPNetwork.Parse("240.0.0.0/4"), "reserved or broadcast (240.0.0.0/4)"),
    ];

    private static readonly (System.Net.IPNetwork Network, string Name)[] V6 =
    [
        (System.Net.IPNetwork.Parse("::1/128"), "loopback (::1)"),
        (System.Net.IPNetwork.Parse("::/128"), "unspecified (::)"),
        (System.Net.IPNetwork.Parse("::/96"), "IPv4-compatible (::/96)"),
        (System.Net.IPNetwork.Parse("64:ff9b:1::/48"), "local NAT64 (64:ff9b:1::/48)"),
        (System.Net.IPNetwork.Parse("100::/64"), "discard-only (100::/64)"),
        (System.Net.IPNetwork.Parse("2001:db8::/32"), "documentation (2001:db8::/32)"),
        (System.Net.IPNetwork.Parse("2001::/23"), "IETF protocol assignments, Teredo (2001::/23)"),
        (System.Net.IPNetwork.Parse("2002::/16"), "6to4 (2002::/16)"),
        (System.Net.IPNetwork.Parse("3fff::/20"), "documentation (3fff::/20)"),
        (System.Net.IPNetwork.Parse("fc00::/7"), "unique-local (fc00::/7)"),
        (System.Net.IPNetwork.Parse("fe80::/10"), "link-local (fe80::/10)"),
        (System.Net.IPNetwork.Parse("fec0::/10"), "site-local (fec0::/10)"),
        (System.Net.IPNetwork.Parse("ff00::/8"), "multicast (ff00::/8)"),
    ];

    private static readonly System.Net.IPNetwork GlobalUnicast = System.Net.IPNetwork.Parse("2000::/3");
    private static readonly System.Net.IPNetwork Nat64 = System.Net.IPNetwork.Parse("64:ff9b::/96");

    /// <summary>The address as it is dialled: an IPv4-mapped IPv6 address is its IPv4 address.</summary>
    public static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    /// <summary>The special range <paramref name="address"/> is in, or null when it is public unicast.</summary>
    public static string? RangeOf(IPAddress address)
    {
        address = Normalize(address);
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            foreach (var (network, name) in V4)
            {
                if (network.Contains(address))
                {
                    return name;
                }
            }

            return null;
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return "not an IP address";
        }

        if (Nat64.Contains(address))
        {
            // NAT64 reaches the IPv4 address in the low 32 bits: judge that one.
            Span<byte> bytes = stackalloc byte[16];
            address.TryWriteBytes(bytes, out _);
            return RangeOf(new IPAddress(bytes[12..])) is { } inner ? "NAT64 of " + inner : null;
        }

        foreach (var (network, name) in V6)
        {
            if (network.Contains(address))
            {
                return name;
            }
        }

        return GlobalUnicast.Contains(address) ? null : "not global unicast (outside 2000::/3)";
    }
}
