using System.Text;
using ModelGateway.Canonical;
using ModelGateway.Protocols.OpenAI;

namespace ModelGateway.Tests.Protocols.OpenAI;

/// <summary>The relay's per-chunk scan finds exactly what a full read would, on the chunks that matter.</summary>
public sealed class ResponseScanTests
{
    private static ResponseFacts Scan(string json, bool valid = true)
    {
        Assert.Equal(valid, ResponseInspector.TryScan(Encoding.UTF8.GetBytes(json), out var facts));
        return facts;
    }

    [Fact]
    public void A_text_chunk_is_relayed_without_a_full_read_and_counts_its_text()
    {
        var facts = Scan("""{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi \"there\""},"finish_reason":null}],"usage":null}""");

        Assert.Equal(0, facts.FinishedChoices);
        Assert.False(facts.HasUsage);
        Assert.False(facts.IsError);
        Assert.Equal(12, facts.OutputTextBytes);
    }

    [Fact]
    public void A_finish_usage_or_error_chunk_is_read_in_full()
    {
        var finish = Scan("""{"choices":[{"index":0,"delta":{},"finish_reason": "length"}]}""");
        var usage = Scan("""{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}""");
        var error = Scan("""{"error":{"message":"overloaded"}}""");

        Assert.Equal(1, finish.FinishedChoices);
        Assert.Equal(FinishReason.Length, finish.FinishReason);
        Assert.True(usage.HasUsage);
        Assert.Equal(7, usage.Usage.Input);
        Assert.Equal(2, usage.Usage.CacheRead);
        Assert.Equal(0, usage.ChoiceCount);
        Assert.True(error.IsError);
    }

    [Fact]
    public void Key_names_inside_the_text_are_not_mistaken_for_keys()
    {
        var facts = Scan("""{"choices":[{"index":0,"delta":{"content":"say \"finish_reason\": \"stop\" and \"usage\": {}"},"finish_reason":null}]}""");

        Assert.Equal(0, facts.FinishedChoices);
        Assert.False(facts.HasUsage);
    }

    [Fact]
    public void Something_that_is_not_a_json_object_is_refused()
    {
        Scan("{not json", valid: false);
        Scan("[1,2]", valid: false);
        Scan("", valid: false);
    }
}
