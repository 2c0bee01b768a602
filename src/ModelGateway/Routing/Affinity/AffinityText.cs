using System.Globalization;

namespace ModelGateway.Routing.Affinity;

/// <summary>How prefix affinity explains itself in <c>x-modelgateway-route-reason</c> and <c>/v1/route/explain</c>.</summary>
internal static class AffinityText
{
    /// <summary>"affinity: prefix 3.2k tokens last served by vllm-a".</summary>
    public static string Reason(int tokens, string deployment)
        => "affinity: prefix " + Tokens(tokens) + " tokens last served by " + deployment;

    private static string Tokens(int tokens) => tokens < 1000
        ? tokens.ToString(CultureInfo.InvariantCulture)
        : (tokens / 1000.0).ToString("0.#", CultureInfo.InvariantCulture) + "k";
}
