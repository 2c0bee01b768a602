using System.Text;
using ModelGateway.Configuration;

namespace ModelGateway.Routing.Objectives;

/// <summary>The reason text of an objective route: why the first is first, then each candidate's live estimate.</summary>
internal static class ObjectiveText
{
    /// <summary>Candidates described in the reason header at most: the ones failover would try first.</summary>
    private const int Described = 3;

    /// <summary><c>slo: cheapest ...; a@x: p99 ttft est 640ms (decayed, 37 samples), predicted 910ms at 15/16 in flight; b@y: ...</c></summary>
    public static string Reason(string why, Deployment[] ranked, ObjectiveSettings objective)
    {
        if (ranked.Length == 0)
        {
            return why;
        }

        var now = ranked[0].State.Latency.Live.Now;
        var text = new StringBuilder(why);
        for (var i = 0; i < ranked.Length && i < Described; i++)
        {
            text.Append("; ").Append(ranked[i].Name).Append(": ").Append(LiveEstimate.Of(ranked[i], objective.Percentile, now).Describe());
        }

        return text.ToString();
    }
}
