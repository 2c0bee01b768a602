using System.Globalization;

namespace ModelGateway.State;

/// <summary>Writes OpenAI's <c>x-ratelimit-*</c> headers from a key's admission.</summary>
internal static class RateLimitHeaders
{
    public static void Apply(HttpResponse response, KeyAdmission admission)
    {
        if (response.HasStarted)
        {
            return;
        }

        var headers = response.Headers;
        if (admission.RequestLimit is { } requests)
        {
            headers["x-ratelimit-limit-requests"] = requests.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-requests"] = admission.RequestsRemaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-requests"] = FormatReset(admission.RequestsReset);
        }

        if (admission.TokenLimit is { } tokens)
        {
            headers["x-ratelimit-limit-tokens"] = tokens.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-tokens"] = admission.TokensRemaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-tokens"] = FormatReset(admission.TokensReset);
        }
    }

    /// <summary>OpenAI's style: <c>1s</c>, <c>12.5s</c>, <c>6m0s</c>.</summary>
    public static string FormatReset(TimeSpan reset)
    {
        if (reset <= TimeSpan.Zero)
        {
            return "0s";
        }

        if (reset < TimeSpan.FromMinutes(1))
        {
            return reset.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s";
        }

        return string.Create(CultureInfo.InvariantCulture, $"{(int)reset.TotalMinutes}m{reset.Seconds}s");
    }
}
