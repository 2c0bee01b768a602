using System.Net;
using ModelGateway.Providers.Media;

namespace ModelGateway.Tests.Providers.Media;

/// <summary>Which addresses the gateway never dials for a client's URL without an explicit allowance.</summary>
public sealed class SpecialAddressesTests
{
    [Theory]
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("127.255.255.254", "loopback")]
    [InlineData("0.0.0.0", "this network")]
    [InlineData("10.0.0.1", "private (10.0.0.0/8)")]
    [InlineData("172.16.0.1", "private (172.16.0.0/12)")]
    [InlineData("172.31.255.255", "private (172.16.0.0/12)")]
    [InlineData("192.168.0.1", "private (192.168.0.0/16)")]
    [InlineData("169.254.169.254", "cloud metadata")]
    [InlineData("100.64.0.1", "carrier-grade NAT")]
    [InlineData("100.127.255.255", "carrier-grade NAT")]
    [InlineData("192.0.0.170", "IETF protocol assignments")]
    [InlineData("192.0.2.1", "documentation")]
    [InlineData("198.18.0.1", "benchmarking")]
    [InlineData("224.0.0.251", "multicast")]
    [InlineData("239.255.255.250", "multicast")]
    [InlineData("255.255.255.255", "broadcast")]
    [InlineData("::1", "loopback (::1)")]
    [InlineData("::", "unspecified")]
    [InlineData("::127.0.0.1", "IPv4-compatible")]
    [InlineData("::ffff:127.0.0.1", "loopback (127.0.0.0/8)")]
    [InlineData("::ffff:169.254.169.254", "cloud metadata")]
    [InlineData("64:ff9b::7f00:1", "NAT64 of loopback")]
    [InlineData("64:ff9b::a9fe:a9fe", "NAT64 of link-local")]
    [InlineData("fc00::1", "unique-local")]
    [InlineData("fd00:ec2::254", "unique-local")]
    [InlineData("fe80::1", "link-local (fe80::/10)")]
    [InlineData("fec0::1", "site-local")]
    [InlineData("ff02::1", "multicast")]
    [InlineData("2001::1", "Teredo")]
    [InlineData("2001:db8::1", "documentation")]
    [InlineData("2002:7f00:1::1", "6to4")]
    [InlineData("100::1", "discard-only")]
    [InlineData("5f00::1", "not global unicast")]
    public void A_special_address_is_refused_with_the_name_of_its_range(string address, string range)
    {
        Assert.Contains(range, SpecialAddresses.RangeOf(IPAddress.Parse(address)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("1.1.1.1")]
    [InlineData("172.32.0.1")]
    [InlineData("100.128.0.1")]
    [InlineData("2606:4700:4700::1111")]
    [InlineData("2a00:1450:4001::200e")]
    [InlineData("::ffff:8.8.8.8")]
    [InlineData("64:ff9b::808:808")]
    public void A_public_unicast_address_is_not_special(string address)
    {
        Assert.Null(SpecialAddresses.RangeOf(IPAddress.Parse(address)));
    }
}
