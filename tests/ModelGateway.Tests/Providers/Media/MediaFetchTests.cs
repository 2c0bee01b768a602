using System.Net;
using ModelGateway.Configuration;
using ModelGateway.Providers.Media;

namespace ModelGateway.Tests.Providers.Media;

/// <summary>
/// URLs clients put in requests, bound for a deployment that needs the bytes: refused with a clear 400
/// while fetching is off, and, where an admin turned it on, fetched only from what the policy allows,
/// with every address checked where it is dialled. The canary sees no connection in any of these tests.
/// </summary>
[Collection(MediaFetchCollection.Name)]
public sealed class MediaFetchTests(MediaFetchFixture fixture)
{
    private readonly TlsImageServer _images = fixture.Images;
    private readonly ConnectionCanary _canary = fixture.Canary;

    private string CanaryUrl(string scheme = "https") => $"{scheme}://127.0.0.1:{_canary.Port}/cat.png";

    [Fact]
    public async Task With_fetching_off_a_url_image_gets_a_400_asking_for_it_inline_and_no_connection_is_opened()
    {
        var served = _images.Requests;

        var (status, _, error) = await fixture.ChatAsync("inline-only", _images.Url("/cat.png"), CanaryUrl());

        MediaAssertions.Refused(status, error, "image_url_not_supported", "need images and documents inline (base64 or a data: URL)");
        Assert.Equal(served, _images.Requests);
        Assert.Equal(0, _canary.Connections);
    }

    [Fact]
    public async Task With_fetching_off_the_same_image_sent_inline_is_served()
    {
        var (status, deployment, _) = await fixture.ChatAsync("inline-only", ImageRequests.DataUrl);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("no-fetch", deployment);
    }

    [Fact]
    public async Task The_fetcher_refuses_a_deployment_without_media_fetch_before_any_connection()
    {
        var deployment = fixture.Gateway.Service<RoutingConfigManager>().Current.Deployments["no-fetch"];
        var fetcher = fixture.Gateway.Service<IMediaFetcher>();

        var refused = await Assert.ThrowsAsync<MediaFetchException>(() => fetcher.FetchAsync(CanaryUrl(), MediaKind.Image, deployment, CancellationToken.None).AsTask());

        Assert.Equal(MediaFetchException.NotInline, refused.Code);
        Assert.Contains("needs the image inline", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, _canary.Connections);
    }

    [Fact]
    public async Task An_https_image_on_an_address_the_admin_allowed_is_fetched_and_served()
    {
        var served = _images.Requests;

        var (status, deployment, error) = await fixture.ChatAsync("fetching", _images.Url("/cat.png"));

        Assert.True(status == HttpStatusCode.OK, error.ToString());
        Assert.Equal("fetch-loopback", deployment);
        Assert.Equal(served + 1, _images.Requests);
    }

    [Fact]
    public async Task The_fetched_type_is_what_the_bytes_are_not_what_the_server_says()
    {
        var deployment = fixture.Gateway.Service<RoutingConfigManager>().Current.Deployments["fetch-loopback"];

        var media = await fixture.Gateway.Service<IMediaFetcher>().FetchAsync(_images.Url("/cat-as-jpeg"), MediaKind.Image, deployment, CancellationToken.None);

        Assert.Equal("image/png", media.MediaType);
        Assert.Equal(TlsImageServer.Png, media.Bytes);
    }

    [Fact]
    public async Task A_host_allow_list_admits_names_under_its_wildcard_and_nothing_else()
    {
        var listed = await fixture.ChatAsync("listed", $"https://cdn.images.test:{_images.Port}/cat.png");
        var apex = await fixture.ChatAsync("listed", $"https://images.test:{_images.Port}/cat.png");
        var byAddress = await fixture.ChatAsync("listed", _images.Url("/cat.png"));

        Assert.True(listed.Status == HttpStatusCode.OK, listed.Error.ToString());
        MediaAssertions.Refused(apex.Status, apex.Error, "invalid_image_url", "from 'images.test'");
        MediaAssertions.Refused(byAddress.Status, byAddress.Error, "invalid_image_url", "from '127.0.0.1'");
    }

    /// <summary>URLs refused for a deployment that fetches with no allowance beyond the defaults; {I} is the image server's port, {C} the canary's.</summary>
    [Theory]
    [InlineData("http://127.0.0.1:{C}/cat.png", "only https")]
    [InlineData("https://127.0.0.1:{C}/cat.png", "loopback (127.0.0.0/8)")]
    [InlineData("https://127.0.0.1:{I}/cat.png", "loopback (127.0.0.0/8)")]
    [InlineData("https://[::1]:{C}/cat.png", "loopback (::1)")]
    [InlineData("https://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local (169.254.0.0/16, cloud metadata)")]
    [InlineData("https://10.1.2.3/cat.png", "private (10.0.0.0/8)")]
    [InlineData("https://192.168.1.1/cat.png", "private (192.168.0.0/16)")]
    [InlineData("https://100.64.0.1/cat.png", "carrier-grade NAT")]
    [InlineData("https://224.0.0.1/cat.png", "multicast")]
    [InlineData("https://[fd00::1]/cat.png", "unique-local (fc00::/7)")]
    [InlineData("https://[fe80::1]/cat.png", "link-local (fe80::/10)")]
    [InlineData("https://[::ffff:127.0.0.1]:{C}/cat.png", "loopback (127.0.0.0/8)")]
    [InlineData("https://2130706433:{C}/cat.png", "loopback (127.0.0.0/8)")]
    [InlineData("https://0.0.0.0:{C}/cat.png", "this network")]
    [InlineData("https://localhost:{C}/cat.png", "'localhost' resolves to an address the gateway does not fetch from")]
    [InlineData("https://loop.test:{C}/cat.png", "'loop.test' resolves to an address the gateway does not fetch from")]
    [InlineData("https://user:secret@127.0.0.1:{C}/cat.png", "carries credentials")]
    [InlineData("https://images.example:8443/cat.png", "on port 8443")]
    [InlineData("file:///etc/passwd", "only https")]
    [InlineData("ftp://127.0.0.1:{C}/cat.png", "only https")]
    [InlineData("cat.png", "not an absolute URL")]
    public async Task Without_an_explicit_allowance_a_url_is_refused_with_no_connection(string template, string message)
    {
        var served = _images.Connections;
        var url = template.Replace("{I}", _images.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
            .Replace("{C}", _canary.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

        var (status, _, error) = await fixture.ChatAsync("strict", url);

        MediaAssertions.Refused(status, error, "invalid_image_url", message);
        Assert.Equal(0, _canary.Connections);
        Assert.Equal(served, _images.Connections);
    }

    [Fact]
    public async Task A_redirect_to_loopback_is_refused_where_it_would_be_dialled()
    {
        var toAddress = await fixture.ChatAsync("fetching", Redirect($"https://127.0.0.2:{_canary.Port}/cat.png"));
        var toName = await fixture.ChatAsync("fetching", Redirect($"https://loop.test:{_canary.Port}/cat.png"));
        var toIpv6 = await fixture.ChatAsync("fetching", Redirect($"https://[::1]:{_canary.Port}/cat.png"));

        MediaAssertions.Refused(toAddress.Status, toAddress.Error, "invalid_image_url", "loopback (127.0.0.0/8)");
        MediaAssertions.Refused(toName.Status, toName.Error, "invalid_image_url", "'loop.test' resolves to an address the gateway does not fetch from");
        MediaAssertions.Refused(toIpv6.Status, toIpv6.Error, "invalid_image_url", "loopback (::1)");
        Assert.Equal(0, _canary.Connections);
    }

    [Fact]
    public async Task A_redirect_to_an_allowed_place_is_followed_and_checked_like_the_first_hop()
    {
        var (status, _, error) = await fixture.ChatAsync("fetching", Redirect(_images.Url("/cat.png")));

        Assert.True(status == HttpStatusCode.OK, error.ToString());
    }

    [Fact]
    public async Task A_deployment_that_follows_no_redirects_refuses_one()
    {
        var origin = $"https://cdn.images.test:{_images.Port}";

        var (status, _, error) = await fixture.ChatAsync("listed", $"{origin}/redirect?to={Uri.EscapeDataString(origin + "/cat.png")}");

        MediaAssertions.Refused(status, error, "invalid_image_url", "follows no redirects");
    }

    [Theory]
    [InlineData("/big.png", "more than 65536 bytes")]
    [InlineData("/endless.png", "more than 65536 bytes")]
    [InlineData("/page.html", "returned 'text/html', not an image")]
    [InlineData("/icon.svg", "returned 'image/svg+xml', not an image")]
    [InlineData("/mislabelled.png", "did not return a PNG, JPEG, GIF, WebP, HEIC or HEIF image")]
    [InlineData("/missing.png", "answered HTTP 404")]
    public async Task A_download_over_its_limits_or_of_the_wrong_kind_is_cut_with_a_clear_error(string path, string message)
    {
        var (status, _, error) = await fixture.ChatAsync("fetching", _images.Url(path));

        MediaAssertions.Refused(status, error, "invalid_image_url", message);
    }

    [Fact]
    public async Task A_slow_download_is_cut_at_the_deployments_time_limit()
    {
        var (status, _, error) = await fixture.ChatAsync("slow", _images.Url("/slow.png"));

        MediaAssertions.Refused(status, error, "invalid_image_url", "did not finish downloading within 1s");
    }

    [Fact]
    public async Task Fetched_bytes_and_client_urls_never_reach_the_logs()
    {
        var secretQuery = "sig=presigned-token-5d1c";
        var (status, _, error) = await fixture.ChatAsync("fetching", _images.Url("/cat.png?" + secretQuery));
        var (refusedStatus, _, _) = await fixture.ChatAsync("strict", $"https://10.9.8.7/cat.png?{secretQuery}");

        Assert.True(status == HttpStatusCode.OK, error.ToString());
        Assert.Equal(HttpStatusCode.BadRequest, refusedStatus);
        var logs = fixture.Gateway.Logs.All;
        Assert.Contains("Media fetch for deployment \"fetch-strict\" refused: \"address refused: private (10.0.0.0/8)\" (host \"10.9.8.7\")", logs, StringComparison.Ordinal);
        Assert.DoesNotContain(secretQuery, logs, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(TlsImageServer.Png), logs, StringComparison.Ordinal);
    }

    private string Redirect(string to) => _images.Url("/redirect?to=" + Uri.EscapeDataString(to));
}
