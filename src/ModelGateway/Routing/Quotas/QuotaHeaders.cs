using System.Globalization;
using ModelGateway.Configuration;
using ModelGateway.Providers;

namespace ModelGateway.Routing.Quotas;

/// <summary>
/// Parsers for the quota headers providers send on every answer (success and 429). They run on every
/// response, so each returns at once, allocating nothing, when its first header is absent.
/// </summary>
internal static class QuotaHeaders
{
    /// <summary>
    /// OpenAI, Azure OpenAI and OpenAI-compatible servers (Groq, vLLM...):
    /// <c>x-ratelimit-{limit,remaining,reset}-{requests,tokens}</c>, resets as Go durations (<c>6m0s</c>, <c>20ms</c>).
    /// </summary>
    public static QuotaReading ReadOpenAI(UpstreamResponse response)
    {
        if (response.Headers is null)
        {
            return default;
        }

        var requests = Long(response.Header("x-ratelimit-remaining-requests"));
        var tokens = Long(response.Header("x-ratelimit-remaining-tokens"));
        if (requests is null && tokens is null)
        {
            return default;
        }

        return new QuotaReading
        {
            RequestsRemaining = requests,
            RequestsLimit = requests is null ? null : Long(response.Header("x-ratelimit-limit-requests")),
            RequestsReset = requests is not null && Durations.TryParse(response.Header("x-ratelimit-reset-requests"), out var r) ? r : null,
            TokensRemaining = tokens,
            TokensLimit = tokens is null ? null : Long(response.Header("x-ratelimit-limit-tokens")),
            TokensReset = tokens is not null && Durations.TryParse(response.Header("x-ratelimit-reset-tokens"), out var t) ? t : null,
        };
    }

    /// <summary>
    /// Anthropic: <c>anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}</c>,
    /// resets as RFC 3339 instants. The tightest of the token windows is the one that binds.
    /// </summary>
    public static QuotaReading ReadAnthropic(UpstreamResponse response, TimeProvider timeProvider)
    {
        if (response.Headers is null)
        {
            return default;
        }

        var requests = Long(response.Header("anthropic-ratelimit-requests-remaining"));
        var tokens = Long(response.Header("anthropic-ratelimit-tokens-remaining"));
        var input = Long(response.Header("anthropic-ratelimit-input-tokens-remaining"));
        var output = Long(response.Header("anthropic-ratelimit-output-tokens-remaining"));
        if (requests is null && tokens is null && input is null && output is null)
        {
            return default;
        }

        var now = timeProvider.GetUtcNow();
        long? tokensRemaining = null;
        long? tokensLimit = null;
        TimeSpan? tokensReset = null;
        Tightest(ref tokensRemaining, ref tokensLimit, ref tokensReset, tokens, response, "anthropic-ratelimit-tokens", now);
        Tightest(ref tokensRemaining, ref tokensLimit, ref tokensReset, input, response, "anthropic-ratelimit-input-tokens", now);
        Tightest(ref tokensRemaining, ref tokensLimit, ref tokensReset, output, response, "anthropic-ratelimit-output-tokens", now);
        return new QuotaReading
        {
            RequestsRemaining = requests,
            RequestsLimit = requests is null ? null : Long(response.Header("anthropic-ratelimit-requests-limit")),
            RequestsReset = requests is null ? null : Instant(response.Header("anthropic-ratelimit-requests-reset"), now),
            TokensRemaining = tokensRemaining,
            TokensLimit = tokensLimit,
            TokensReset = tokensReset,
        };
    }

    private static void Tightest(ref long? remaining, ref long? limit, ref TimeSpan? reset, long? candidate, UpstreamResponse response, string prefix, DateTimeOffset now)
    {
        if (candidate is null || (remaining is not null && candidate >= remaining))
        {
            return;
        }

        remaining = candidate;
        limit = Long(response.Header(prefix + "-limit"));
        reset = Instant(response.Header(prefix + "-reset"), now);
    }

    private static TimeSpan? Instant(string? text, DateTimeOffset now)
    {
        if (text is null || !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
        {
            return null;
        }

        var wait = at - now;
        return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
    }

    private static long? Long(string? text)
        => text is not null && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= 0 ? value : null;
}
