using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace ModelGateway.Tests.Deploy;

/// <summary>How a streamed answer ended, as a client sees it.</summary>
internal enum StreamEnd
{
    /// <summary><c>data: [DONE]</c> arrived.</summary>
    Done,

    /// <summary>An in-band error event arrived (an SDK raises it).</summary>
    ErrorEvent,

    /// <summary>Anything else: a non-200 status, a connection error, a body that stopped without either.</summary>
    Lost,
}

/// <summary>A streamed answer read to its end.</summary>
internal sealed record StreamResult(StreamEnd End, int Status, int Events, string? ErrorCode, string Detail);

/// <summary>Chat requests as SDKs send them, and reading streams to their end.</summary>
internal static class ChatCalls
{
    public static HttpRequestMessage Chat(string model, bool stream, string? bearer = null)
    {
        var body = stream
            ? $$"""{"model":"{{model}}","stream":true,"messages":[{"role":"user","content":"Hello"}]}"""
            : $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Hello"}]}""";
        var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return request;
    }

    /// <summary>Sends a streamed chat and reads it to its end; <paramref name="afterFirstEvent"/> runs once the first event is in.</summary>
    public static async Task<StreamResult> StreamAsync(HttpClient http, string model, string? bearer = null, Func<Task>? afterFirstEvent = null, CancellationToken cancellationToken = default)
    {
        HttpResponseMessage response;
        try
        {
            using var request = Chat(model, stream: true, bearer);
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            return new StreamResult(StreamEnd.Lost, 0, 0, null, "send failed: " + ex.Message);
        }

        using (response)
        {
            if ((int)response.StatusCode != 200)
            {
                return new StreamResult(StreamEnd.Lost, (int)response.StatusCode, 0, null, await SafeReadAsync(response));
            }

            var events = 0;
            try
            {
                await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
                using var reader = new StreamReader(body);
                while (await reader.ReadLineAsync(cancellationToken) is { } line)
                {
                    if (!line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    var data = line["data: ".Length..];
                    if (data == "[DONE]")
                    {
                        return new StreamResult(StreamEnd.Done, 200, events, null, "done");
                    }

                    using var json = JsonDocument.Parse(data);
                    if (json.RootElement.TryGetProperty("error", out var error))
                    {
                        var code = error.TryGetProperty("code", out var c) ? c.GetString() : null;
                        return new StreamResult(StreamEnd.ErrorEvent, 200, events, code, data);
                    }

                    events++;
                    if (events == 1 && afterFirstEvent is not null)
                    {
                        await afterFirstEvent();
                    }
                }

                return new StreamResult(StreamEnd.Lost, 200, events, null, "the body ended without [DONE] or an error event");
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
            {
                return new StreamResult(StreamEnd.Lost, 200, events, null, "read failed: " + ex.Message);
            }
        }
    }

    /// <summary>A non-streamed chat: the status (0 when no answer came) and the body.</summary>
    public static async Task<(int Status, string Body)> CompleteAsync(HttpClient http, string model, string? bearer = null, CancellationToken cancellationToken = default)
    {
        try
        {
            using var request = Chat(model, stream: false, bearer);
            using var response = await http.SendAsync(request, cancellationToken);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            return (0, ex.Message);
        }
    }

    /// <summary>The <c>error.code</c> of an OpenAI error body, or null.</summary>
    public static string? ErrorCode(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.TryGetProperty("error", out var error) && error.TryGetProperty("code", out var code) ? code.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static async Task<string> SafeReadAsync(HttpResponseMessage response)
    {
        try
        {
            return await response.Content.ReadAsStringAsync();
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            return ex.Message;
        }
    }
}
