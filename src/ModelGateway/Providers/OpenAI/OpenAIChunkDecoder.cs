using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Configuration;

namespace ModelGateway.Providers.OpenAI;

/// <summary>
/// Decodes OpenAI's <c>chat.completion.chunk</c> stream into canonical events, for clients that speak
/// another wire (the pass-through path never decodes). Reads the first choice: translated requests
/// ask for one. <c>reasoning_content</c> (vLLM, DeepSeek) and <c>reasoning</c> (OpenRouter, Ollama)
/// become reasoning deltas.
/// </summary>
internal sealed class OpenAIChunkDecoder(Stream body, Deployment deployment, int maxEventBytes) : SseStreamDecoder(body, maxEventBytes)
{
    private bool _started;

    protected override void Decode(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data)
    {
        if (data.SequenceEqual("[DONE]"u8))
        {
            IsComplete = true;
            return;
        }

        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 128 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InvalidDataException("An OpenAI stream event is not a JSON object.");
        }

        string? id = null;
        string? model = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                id = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                reader.Read();
                model = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Null)
                {
                    Emit(StreamEvent.Failed(OpenAIErrors.InBand(data, deployment)));
                    return;
                }
            }
            else if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                StartOnce(id, model);
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    ReadChoices(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    Emit(StreamEvent.Counted(ReadUsage(ref reader)));
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        StartOnce(id, model);
    }

    private void StartOnce(string? id, string? model)
    {
        if (!_started && (id is not null || model is not null))
        {
            _started = true;
            Emit(StreamEvent.Started(id, model));
        }
    }

    private void ReadChoices(ref Utf8JsonReader reader)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            var index = 0;
            var finish = FinishReason.None;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("index"u8))
                {
                    reader.Read();
                    index = reader.TokenType == JsonTokenType.Number ? reader.GetInt32() : 0;
                }
                else if (reader.ValueTextEquals("delta"u8) && index == 0)
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        ReadDelta(ref reader);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("finish_reason"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        finish = ParseFinish(ref reader);
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (finish != FinishReason.None && index == 0)
            {
                Emit(StreamEvent.Finished(finish));
            }
        }
    }

    private void ReadDelta(ref Utf8JsonReader reader)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("refusal"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0)
                {
                    Emit(StreamEvent.Text(Text(ref reader)));
                }
            }
            else if (reader.ValueTextEquals("reasoning_content"u8) || reader.ValueTextEquals("reasoning"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0)
                {
                    Emit(StreamEvent.Reasoning(Text(ref reader)));
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    ReadToolCalls(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private void ReadToolCalls(ref Utf8JsonReader reader)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            var index = 0;
            string? id = null;
            string? name = null;
            ReadOnlyMemory<byte> arguments = default;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("index"u8))
                {
                    reader.Read();
                    index = reader.TokenType == JsonTokenType.Number ? reader.GetInt32() : 0;
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    id = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }
                else if (reader.ValueTextEquals("function"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        reader.Skip();
                        continue;
                    }

                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("name"u8))
                        {
                            reader.Read();
                            name = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                        }
                        else if (reader.ValueTextEquals("arguments"u8))
                        {
                            reader.Read();
                            if (reader.TokenType == JsonTokenType.String)
                            {
                                arguments = Text(ref reader);
                            }
                        }
                        else
                        {
                            reader.Read();
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (id is not null || name is not null)
            {
                Emit(StreamEvent.ToolCall(index, id ?? $"call_{index}", name ?? string.Empty));
            }

            if (arguments.Length > 0)
            {
                Emit(StreamEvent.ToolArguments(index, arguments));
            }
        }
    }

    internal static FinishReason ParseFinish(ref Utf8JsonReader reader)
        => reader.ValueTextEquals("stop"u8) ? FinishReason.Stop
            : reader.ValueTextEquals("length"u8) ? FinishReason.Length
            : reader.ValueTextEquals("tool_calls"u8) ? FinishReason.ToolCalls
            : reader.ValueTextEquals("content_filter"u8) ? FinishReason.ContentFilter
            : reader.ValueTextEquals("function_call"u8) ? FinishReason.FunctionCall
            : FinishReason.Other;

    /// <summary>OpenAI's usage object: prompt tokens include cached ones; completion tokens include reasoning.</summary>
    internal static TokenUsage ReadUsage(ref Utf8JsonReader reader)
    {
        var usage = new TokenUsage { Reported = true };
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("prompt_tokens"u8))
            {
                reader.Read();
                usage.Input = Count(ref reader);
            }
            else if (reader.ValueTextEquals("completion_tokens"u8))
            {
                reader.Read();
                usage.Output = Count(ref reader);
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8) || reader.ValueTextEquals("completion_tokens_details"u8))
            {
                var prompt = reader.ValueTextEquals("prompt_tokens_details"u8);
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (prompt && reader.ValueTextEquals("cached_tokens"u8))
                    {
                        reader.Read();
                        usage.CacheRead = Count(ref reader);
                    }
                    else if (prompt && reader.ValueTextEquals("cache_write_tokens"u8))
                    {
                        reader.Read();
                        usage.CacheWrite = Count(ref reader);
                    }
                    else if (!prompt && reader.ValueTextEquals("reasoning_tokens"u8))
                    {
                        reader.Read();
                        usage.Reasoning = Count(ref reader);
                    }
                    else
                    {
                        reader.Read();
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return usage;
    }

    private static long Count(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0)
        {
            return value;
        }

        reader.Skip();
        return 0;
    }
}
