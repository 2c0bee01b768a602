using System.Net;
using System.Text.Json;

namespace ModelGateway.Tests.Providers.Media;

/// <summary>
/// Routing sends a request with image URLs to a deployment that takes them as they are before one that
/// would need the gateway to fetch them, whatever the strategy says, and <c>/v1/route/explain</c> says
/// why a deployment that needs bytes was passed over or ranked last.
/// </summary>
[Collection(MediaFetchCollection.Name)]
public sealed class MediaUrlRoutingTests(MediaFetchFixture fixture)
{
    private readonly TlsImageServer _images = fixture.Images;

    [Fact]
    public async Task A_url_image_goes_to_the_deployment_that_takes_urls_even_when_a_fetching_one_comes_first()
    {
        var served = _images.Requests;

        var (status, deployment, _) = await fixture.ChatAsync("prefer-urls", _images.Url("/cat.png"));

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("url-taker", deployment);
        Assert.Equal(served, _images.Requests);
    }

    [Fact]
    public async Task An_inline_image_keeps_the_routes_own_order()
    {
        var (status, deployment, _) = await fixture.ChatAsync("prefer-urls", ImageRequests.DataUrl);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("fetch-loopback", deployment);
    }

    [Fact]
    public async Task Weights_never_draw_a_deployment_that_would_fetch_while_one_takes_urls()
    {
        var served = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 6; i++)
        {
            var (status, deployment, _) = await fixture.ChatAsync("prefer-weighted", _images.Url("/cat.png"));
            Assert.Equal(HttpStatusCode.OK, status);
            served.Add(deployment!);
        }

        Assert.DoesNotContain("fetch-loopback", served);
    }

    [Fact]
    public async Task Explain_ranks_a_fetching_deployment_last_and_says_why()
    {
        using var explained = await ExplainAsync("prefer-urls", _images.Url("/cat.png"));
        var root = explained.RootElement;
        var candidates = root.GetProperty("candidates");

        Assert.Equal(1, root.GetProperty("media_urls").GetInt32());
        Assert.Equal("url-taker", candidates[0].GetProperty("deployment").GetString());
        Assert.False(candidates[0].TryGetProperty("fetches_media_urls", out _));
        Assert.Equal("fetch-loopback", candidates[1].GetProperty("deployment").GetString());
        Assert.True(candidates[1].GetProperty("fetches_media_urls").GetBoolean());
        Assert.Contains("ranks after every deployment that takes URLs", candidates[1].GetProperty("note").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explain_names_the_bytes_only_deployment_passed_over_when_fetching_is_off()
    {
        using var withUrl = await ExplainAsync("prefer-off", _images.Url("/cat.png"));
        using var inline = await ExplainAsync("prefer-off", ImageRequests.DataUrl);

        var excluded = Assert.Single(withUrl.RootElement.GetProperty("excluded").EnumerateArray());
        Assert.Equal("no-fetch", excluded.GetProperty("deployment").GetString());
        Assert.Equal("media_url_not_supported", excluded.GetProperty("reason").GetString());
        Assert.Contains("only inline (base64 or a data: URL), and fetching URLs is off for it", excluded.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("no-fetch", inline.RootElement.GetProperty("candidates")[0].GetProperty("deployment").GetString());
        Assert.Empty(inline.RootElement.GetProperty("excluded").EnumerateArray());
    }

    private async Task<JsonDocument> ExplainAsync(string model, string imageUrl)
    {
        using var response = await fixture.Gateway.PostAsync("v1/route/explain", ImageRequests.Chat(model, imageUrl));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return JsonDocument.Parse(text);
    }
}
