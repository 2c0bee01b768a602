using System.Text;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Tests.Protocols.OpenAI;

/// <summary>The request reader finds what routing needs in one pass and refuses what OpenAI would refuse.</summary>
public sealed class RequestParserTests
{
    private static RequestInfo Parse(string json, Operation operation = Operation.ChatCompletions)
    {
        Assert.True(RequestParser.TryParse(Encoding.UTF8.GetBytes(json), operation, 64, out var info, out var problem), problem.Message);
        return info;
    }

    [Fact]
    public void Finds_the_model_by_its_exact_byte_range()
    {
        const string json = """{ "messages":[{"role":"user","content":"hi"}], "model" : "gpt-4o" }""";
        var info = Parse(json);

        Assert.Equal("\"gpt-4o\"", json.Substring(info.ModelStart, info.ModelLength));
        Assert.Equal("gpt-4o", RequestModel.Get(Encoding.UTF8.GetBytes(json), info));
    }

    [Fact]
    public void Reads_what_routing_needs()
    {
        var info = Parse("""
            {"model":"m","stream":true,"stream_options":{"include_usage":false},"max_completion_tokens":300,"n":2,
             "tools":[{"type":"function","function":{"name":"f","parameters":{}}}],
             "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}},
             "messages":[{"role":"system","content":"You are terse."},
                         {"role":"user","content":[{"type":"text","text":"Describe"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}
            """);

        Assert.True(info.Stream);
        Assert.False(info.IncludeUsage);
        Assert.Equal(300, info.MaxTokens);
        Assert.Equal(2, info.N);
        Assert.True(info.HasTools);
        Assert.Equal(1, info.ImageCount);
        Assert.Equal(ResponseFormatKind.JsonSchema, info.ResponseFormat);
        Assert.Equal(2, info.MessageCount);
        Assert.True(info.TextBytes >= "You are terse.Describe".Length);
    }

    [Fact]
    public void An_empty_tools_list_does_not_require_tool_support()
    {
        Assert.False(Parse("""{"model":"m","tools":[],"messages":[{"role":"user","content":"hi"}]}""").HasTools);
    }

    [Fact]
    public void Embedding_inputs_may_be_text_or_token_arrays()
    {
        Assert.Equal(1, Parse("""{"model":"e","input":"one"}""", Operation.Embeddings).InputCount);
        Assert.Equal(3, Parse("""{"model":"e","input":["a","b","c"]}""", Operation.Embeddings).InputCount);
        var tokens = Parse("""{"model":"e","input":[[1,2,3],[4,5]]}""", Operation.Embeddings);
        Assert.Equal(2, tokens.InputCount);
        Assert.Equal(5, tokens.TokenIds);
    }

    [Fact]
    public void Unknown_fields_of_any_shape_are_skipped()
    {
        var info = Parse("""{"model":"m","brand_new":{"deep":[{"a":[1,{"b":null}]}]},"messages":[{"role":"user","content":"hi","future":true}],"x":1.5e3}""");

        Assert.Equal(1, info.MessageCount);
    }

    [Theory]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"top_p":1.5}""", "top_p")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"presence_penalty":-3}""", "presence_penalty")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":"yes"}}""", "stream_options.include_usage")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":42}]}""", "messages[0].content")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}]} {}""", null)]
    public void Refuses_values_openai_would_refuse(string json, string? param)
    {
        Assert.False(RequestParser.TryParse(Encoding.UTF8.GetBytes(json), Operation.ChatCompletions, 64, out _, out var problem));
        Assert.Equal(param, problem.Param);
    }

    [Theory]
    [InlineData("""{"model":"m","messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":"hi"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{}"}},{"id":"c2","type":"function","function":{"name":"get_time","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"},{"role":"tool","tool_call_id":"c2","content":[{"type":"text","text":"noon"}]},{"role":"assistant","content":"Sunny at noon."}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","function_call":{"name":"f","arguments":"{}"}},{"role":"function","name":"f","content":"42"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","name":"ada_lovelace-1","content":[{"type":"text","text":"hi"},{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}},{"type":"file","file":{"file_id":"f1"}}]}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]},{"role":"user","content":"ok"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","custom":{"name":"grammar"}},{"type":"function","function":{"name":"a_b-C9"}}],"tool_choice":{"type":"function","function":{"name":"a_b-C9"}}}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":"END","logit_bias":{"50256":-100,"1":100},"tool_choice":"required","top_logprobs":20,"logprobs":true}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d"],"stream":true,"stream_options":{"include_usage":true}}""")]
    [InlineData("""{"model":"m","messages":[{"role":"us\u0065r","content":"caf\u00e9 \ud83d\ude00"}],"stop":null,"logit_bias":null,"tool_choice":null}""")]
    public void Accepts_what_openai_accepts(string json)
    {
        Assert.True(RequestParser.TryParse(Encoding.UTF8.GetBytes(json), Operation.ChatCompletions, 64, out _, out var problem), problem.Message);
    }

    [Fact]
    public void Valid_multibyte_utf8_of_every_length_is_accepted()
    {
        var info = Parse("""{"model":"m","messages":[{"role":"user","content":"é € 😀 中文"}]}""");

        Assert.Equal(1, info.MessageCount);
    }

    [Fact]
    public void Tool_definitions_still_count_as_input_and_mark_the_request_as_using_tools()
    {
        const string tools = """[{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object"}}}]""";
        var info = Parse($$"""{"model":"m","tools":{{tools}},"messages":[{"role":"user","content":"hi"}]}""");

        Assert.True(info.HasTools);
        Assert.True(info.TextBytes >= tools.Length);
    }

    [Fact]
    public void Streams_cannot_be_asked_of_embeddings()
    {
        Assert.False(RequestParser.TryParse("""{"model":"e","input":"x","stream":true}"""u8, Operation.Embeddings, 64, out _, out var problem));
        Assert.Equal("stream", problem.Param);
    }

    [Fact]
    public void Counts_images_given_by_url_apart_from_inline_ones()
    {
        var info = Parse("""
            {"model":"m","messages":[{"role":"user","content":[
              {"type":"image_url","image_url":{"url":"https://cdn.example.com/a.png","detail":"low"}},
              {"type":"image_url","image_url":{"detail":"high","url":"DATA:image/png;base64,iVBORw0KGgo="}},
              {"type":"image_url","image_url":"http://example.com/b.png"},
              {"type":"image_url","image_url":{"url":"\u0064ata:image/png;base64,iVBORw0KGgo="}},
              {"type":"image_url","image_url":{"url":"\u0068ttps://example.com/c.png"}}]}]}
            """);

        Assert.Equal(5, info.ImageCount);
        Assert.Equal(3, info.MediaUrlCount);
    }
}
