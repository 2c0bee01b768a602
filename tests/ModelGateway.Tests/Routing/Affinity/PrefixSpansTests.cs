using System.Text;
using ModelGateway.Routing.Affinity;

namespace ModelGateway.Tests.Routing.Affinity;

/// <summary>How a request body is cut into cumulative prompt prefixes, whatever client API sent it.</summary>
public sealed class PrefixSpansTests
{
    private const ulong Seed = 42;
    private static readonly string System = new('s', 800);
    private static readonly string Tools = """[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]""";

    private static PrefixSpan[] Spans(string json, int minTokens = 1) => PrefixSpans.Compute(Encoding.UTF8.GetBytes(json), Seed, minTokens);

    private static string Chat(params string[] turns)
        => $$"""{"model":"m","messages":[{"role":"system","content":"{{System}}"}{{string.Concat(turns.Select(t => "," + t))}}],"stream":false}""";

    [Fact]
    public void The_next_turn_of_a_conversation_shares_the_whole_previous_prompt_as_a_prefix()
    {
        var first = Spans(Chat("""{"role":"user","content":"hi"}"""));
        var second = Spans(Chat("""{"role":"user","content":"hi"}""", """{"role":"assistant","content":"hello"}""", """{"role":"user","content":"again"}"""));

        // Longest first: the previous request's whole prompt is the second request's third-longest prefix.
        Assert.Equal(first[0], second[2]);
        Assert.True(second[0].Tokens > second[1].Tokens && second[1].Tokens > second[2].Tokens);
    }

    [Fact]
    public void System_prompt_and_tools_make_one_prefix_whatever_their_order_in_the_body()
    {
        var anthropic = Spans($$"""{"system":"{{System}}","tools":{{Tools}},"model":"m","messages":[{"role":"user","content":"a"}]}""");
        var reordered = Spans($$"""{"model":"m","messages":[{"role":"user","content":"b"}],"tools":{{Tools}},"system":"{{System}}"}""");

        Assert.Equal(anthropic[^1], reordered[^1]);
        Assert.NotEqual(anthropic[0], reordered[0]);
    }

    [Fact]
    public void Prefixes_shorter_than_the_minimum_are_left_out_and_a_short_prompt_has_none()
    {
        Assert.Empty(Spans("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", minTokens: 100));
        Assert.All(Spans(Chat("""{"role":"user","content":"hi"}"""), minTokens: 200), s => Assert.True(s.Tokens >= 200));
    }

    [Fact]
    public void A_Responses_input_string_is_one_turn_after_the_instructions()
    {
        var spans = Spans($$"""{"model":"m","instructions":"{{System}}","input":"what now?"}""");

        Assert.Equal(2, spans.Length);
        Assert.True(spans[0].Tokens > spans[1].Tokens);
    }

    [Fact]
    public void Cache_control_markers_moving_to_the_newest_turn_do_not_change_the_prefix()
    {
        // Anthropic clients mark the newest turn for caching, so an earlier turn loses its marker on the next request.
        var first = Spans($$$"""{"model":"m","system":"{{{System}}}","messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}""");
        var second = Spans($$$"""{"model":"m","system":"{{{System}}}","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"assistant","content":"hello"},{"role":"user","content":[{"type":"text","text":"again","cache_control":{"type":"ephemeral"}}]}]}""");

        Assert.Equal(first[0], second[2]);
    }

    [Fact]
    public void The_same_prompt_on_another_route_is_another_prefix()
    {
        var body = Encoding.UTF8.GetBytes(Chat("""{"role":"user","content":"hi"}"""));

        Assert.NotEqual(PrefixSpans.Compute(body, 1, 1)[0].Hash, PrefixSpans.Compute(body, 2, 1)[0].Hash);
    }
}
