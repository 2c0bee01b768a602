using System.Text;
using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using ModelGateway.Tests.FakeUpstream;
using ModelGateway.Tests.Infrastructure;

namespace ModelGateway.Tests.Protocols.Anthropic;

/// <summary>What an official Anthropic SDK stream delivered, assembled the way an agent assembles it.</summary>
internal sealed class StreamedMessage
{
    public List<string> Kinds { get; } = [];
    public StringBuilder Text { get; } = new();
    public StringBuilder Thinking { get; } = new();
    public string? Signature { get; set; }
    public List<(long Index, string Id, string Name, StringBuilder Input)> ToolUses { get; } = [];
    public string? StopReason { get; set; }
    public string? Id { get; set; }
    public long StartInputTokens { get; set; }
    public long? FinalInputTokens { get; set; }
    public long FinalOutputTokens { get; set; }

    public IEnumerable<ContentBlockParam> AsAssistantBlocks()
    {
        if (Text.Length > 0)
        {
            yield return new TextBlockParam(Text.ToString());
        }

        foreach (var use in ToolUses)
        {
            yield return new ToolUseBlockParam
            {
                ID = use.Id,
                Name = use.Name,
                Input = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(use.Input.Length == 0 ? "{}" : use.Input.ToString())!,
            };
        }
    }
}

/// <summary>The official Anthropic .NET SDK pointed at the gateway, and helpers to read its streams.</summary>
internal static class AnthropicClients
{
    public static AnthropicClient For(GatewayHost gateway, string key = "sk-client-key-not-for-upstream") => new()
    {
        BaseUrl = gateway.BaseAddress.ToString().TrimEnd('/'),
        ApiKey = key,
        MaxRetries = 0,
    };

    public static Tool Tool(string name, params string[] properties) => new()
    {
        Name = name,
        Description = "Look up " + name,
        InputSchema = new InputSchema
        {
            Properties = properties.ToDictionary(p => p, _ => JsonSerializer.SerializeToElement(new { type = "string" })),
            Required = properties,
        },
    };

    public static async Task<StreamedMessage> StreamAsync(AnthropicClient client, MessageCreateParams ask)
    {
        var message = new StreamedMessage();
        await foreach (var e in client.Messages.CreateStreaming(ask))
        {
            if (e.TryPickStart(out var start))
            {
                message.Kinds.Add("message_start");
                message.Id = start!.Message.ID;
                message.StartInputTokens = start.Message.Usage.InputTokens;
            }
            else if (e.TryPickContentBlockStart(out var blockStart))
            {
                message.Kinds.Add("content_block_start");
                if (blockStart!.ContentBlock.TryPickToolUse(out var use))
                {
                    message.ToolUses.Add((blockStart.Index, use!.ID, use.Name, new StringBuilder()));
                }
            }
            else if (e.TryPickContentBlockDelta(out var delta))
            {
                message.Kinds.Add("content_block_delta");
                if (delta!.Delta.TryPickText(out var text))
                {
                    message.Text.Append(text!.Text);
                }
                else if (delta.Delta.TryPickInputJson(out var json))
                {
                    message.ToolUses.Single(u => u.Index == delta.Index).Input.Append(json!.PartialJson);
                }
                else if (delta.Delta.TryPickThinking(out var thinking))
                {
                    message.Thinking.Append(thinking!.Thinking);
                }
                else if (delta.Delta.TryPickSignature(out var signature))
                {
                    message.Signature = signature!.Signature;
                }
            }
            else if (e.TryPickContentBlockStop(out _))
            {
                message.Kinds.Add("content_block_stop");
            }
            else if (e.TryPickDelta(out var messageDelta))
            {
                message.Kinds.Add("message_delta");
                message.StopReason = messageDelta!.Delta.StopReason?.Raw();
                message.FinalOutputTokens = messageDelta.Usage.OutputTokens;
                message.FinalInputTokens = messageDelta.Usage.InputTokens;
            }
            else if (e.TryPickStop(out _))
            {
                message.Kinds.Add("message_stop");
            }
        }

        return message;
    }

    /// <summary>Posts a raw Messages body and reads the named events of its stream strictly.</summary>
    public static async Task<List<SseEvent>> RawEventsAsync(GatewayHost gateway, string body, Action<System.Net.Http.Headers.HttpRequestHeaders>? headers = null)
    {
        using var response = await gateway.PostAsync("v1/messages", body, headers: headers);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        Assert.StartsWith("text/event-stream", response.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        using var reader = await NamedSseReader.OpenAsync(response);
        return await reader.ReadAllAsync();
    }

    public static async Task<JsonElement> ErrorAsync(HttpResponseMessage response)
    {
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("error", body.GetProperty("type").GetString());
        Assert.True(body.TryGetProperty("request_id", out _), body.ToString());
        return body.GetProperty("error");
    }
}
