using System.Globalization;
using System.Text.Json;

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

    /// <summary>
    /// explain's <c>affinity</c> member, on routes with affinity and a long enough prompt: the deployment that served
    /// the prefix last and whether it leads (<c>hit</c>) or something put another first (<c>overridden</c>); <c>miss</c> without one.
    /// </summary>
    public static void WriteExplain(Utf8JsonWriter json, RoutingDecision decision)
    {
        if (decision.AffinityOutcome == AffinityOutcome.None)
        {
            return;
        }

        json.WriteStartObject("affinity");
        json.WriteString("outcome", decision.AffinityOutcome switch
        {
            AffinityOutcome.Hit => "hit",
            AffinityOutcome.Miss => "miss",
            _ => "overridden",
        });
        if (decision.AffinityDeployment is { } warm)
        {
            json.WriteString("last_served_by", warm.Name);
            json.WriteNumber("prefix_tokens", decision.AffinityTokens);
        }

        json.WriteEndObject();
    }
}
