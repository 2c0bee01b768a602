using System.Collections.Concurrent;
using System.Text.Json;
using ModelGateway.FakeUpstream.Internal.Wires;

namespace ModelGateway.FakeUpstream.Internal.Responses;

/// <summary>
/// OpenAI's endpoints a gateway forwards without interpreting them: <c>/v1/images/*</c>,
/// <c>/v1/audio/*</c>, <c>/v1/moderations</c>, <c>/v1/files</c> and <c>/v1/batches</c>. Bodies (JSON or
/// multipart) are recorded as received; answers have OpenAI's shapes, with usage where OpenAI reports
/// it (image generation, transcriptions). Uploaded files are kept so they can be listed, read and deleted.
/// </summary>
internal sealed class OpenAIExtrasWire(WireServices services) : ProviderWire
{
    private static readonly string[] Prefixes = ["/v1/images/", "/v1/audio/", "/v1/moderations", "/v1/files", "/v1/batches"];

    private readonly ConcurrentDictionary<string, (string Name, byte[] Content)> _files = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _batches = new(StringComparer.Ordinal);

    public override bool TryMatch(HttpRequest request, out WireRoute route)
    {
        var path = request.Path.Value ?? string.Empty;
        foreach (var prefix in Prefixes)
        {
            if (path.StartsWith(prefix, StringComparison.Ordinal))
            {
                route = new WireRoute(UpstreamWire.OpenAIExtras, request.Method + " " + path["/v1/".Length..], null);
                return true;
            }
        }

        route = default;
        return false;
    }

    public override string? ModelOf(WireRoute route, byte[] body) => body.Length > 0 && body[0] == (byte)'{' ? Anthropic.AnthropicWire.BodyModel(body) : null;

    public override async Task HandleAsync(WireCall call)
    {
        var context = call.Context;
        context.Response.Headers["x-request-id"] = "req_" + WireIds.HexId(32);
        if (services.Options.ExpectedApiKey is { } expected && context.Request.Headers.Authorization.ToString() != "Bearer " + expected)
        {
            await WriteAsync(call, 401, ErrorBodies.OpenAI(ErrorBodies.MissingApiKey, "invalid_request_error", null, "invalid_api_key")).ConfigureAwait(false);
            return;
        }

        var behavior = services.Take(ModelOf(call.Route, call.Body) ?? "extras");
        if (behavior.StatusCode is < 200 or >= 300)
        {
            await WriteAsync(call, behavior.StatusCode, ErrorBodies.ForBehavior(behavior, null)).ConfigureAwait(false);
            return;
        }

        var now = services.Time.GetUtcNow().ToUnixTimeSeconds();
        var operation = call.Route.Operation;
        var parts = operation.Split(' ', 2);
        var (method, path) = (parts[0], parts[1]);
        switch (path)
        {
            case "images/generations" or "images/edits" or "images/variations":
                await WriteAsync(call, 200, JsonBytes.Write(now, static (w, now) =>
                {
                    w.WriteStartObject();
                    w.WriteNumber("created"u8, now);
                    w.WriteStartArray("data"u8);
                    w.WriteStartObject();
                    w.WriteString("b64_json"u8, "iVBORw0KGgo="u8);
                    w.WriteEndObject();
                    w.WriteEndArray();
                    w.WriteStartObject("usage"u8);
                    w.WriteNumber("input_tokens"u8, 12);
                    w.WriteNumber("output_tokens"u8, 272);
                    w.WriteNumber("total_tokens"u8, 284);
                    w.WriteStartObject("input_tokens_details"u8);
                    w.WriteNumber("text_tokens"u8, 12);
                    w.WriteNumber("image_tokens"u8, 0);
                    w.WriteEndObject();
                    w.WriteEndObject();
                    w.WriteEndObject();
                })).ConfigureAwait(false);
                return;
            case "audio/speech":
                await WriteAsync(call, 200, "ID3\u0004fake-mp3-audio"u8.ToArray(), "audio/mpeg").ConfigureAwait(false);
                return;
            case "audio/transcriptions" or "audio/translations":
                await WriteAsync(call, 200, JsonBytes.Write(call.Body.Length, static (w, length) =>
                {
                    w.WriteStartObject();
                    w.WriteString("text"u8, $"Transcribed {length} bytes of multipart.");
                    w.WriteStartObject("usage"u8);
                    w.WriteString("type"u8, "tokens"u8);
                    w.WriteNumber("input_tokens"u8, 14);
                    w.WriteNumber("output_tokens"u8, 45);
                    w.WriteNumber("total_tokens"u8, 59);
                    w.WriteEndObject();
                    w.WriteEndObject();
                })).ConfigureAwait(false);
                return;
            case "moderations":
                await WriteAsync(call, 200, JsonBytes.Write(0, static (w, _) =>
                {
                    w.WriteStartObject();
                    w.WriteString("id"u8, "modr-" + WireIds.HexId(24));
                    w.WriteString("model"u8, "omni-moderation-latest"u8);
                    w.WriteStartArray("results"u8);
                    w.WriteStartObject();
                    w.WriteBoolean("flagged"u8, false);
                    w.WriteStartObject("categories"u8);
                    w.WriteEndObject();
                    w.WriteEndObject();
                    w.WriteEndArray();
                    w.WriteEndObject();
                })).ConfigureAwait(false);
                return;
            case "files" when method == "POST":
                var id = "file-" + WireIds.HexId(24);
                _files[id] = ("upload.jsonl", call.Body);
                await WriteAsync(call, 200, File(id, call.Body.Length, now)).ConfigureAwait(false);
                return;
            case "files" when method == "GET":
                await WriteAsync(call, 200, JsonBytes.Write((_files, now), static (w, state) =>
                {
                    w.WriteStartObject();
                    w.WriteString("object"u8, "list"u8);
                    w.WriteStartArray("data"u8);
                    foreach (var (id, file) in state._files)
                    {
                        using var document = JsonDocument.Parse(File(id, file.Content.Length, state.now));
                        document.RootElement.WriteTo(w);
                    }

                    w.WriteEndArray();
                    w.WriteEndObject();
                })).ConfigureAwait(false);
                return;
            case "batches" when method == "POST":
                var batch = "batch_" + WireIds.HexId(24);
                _batches[batch] = "validating";
                await WriteAsync(call, 200, Batch(batch, "validating", now)).ConfigureAwait(false);
                return;
        }

        var segments = path.Split('/');
        if (segments[0] == "files" && segments.Length >= 2 && _files.TryGetValue(segments[1], out var stored))
        {
            if (segments.Length == 3 && segments[2] == "content")
            {
                await WriteAsync(call, 200, stored.Content, "application/octet-stream").ConfigureAwait(false);
            }
            else if (method == "DELETE")
            {
                _files.TryRemove(segments[1], out _);
                await WriteAsync(call, 200, JsonBytes.Write(segments[1], static (w, id) =>
                {
                    w.WriteStartObject();
                    w.WriteString("id"u8, id);
                    w.WriteString("object"u8, "file"u8);
                    w.WriteBoolean("deleted"u8, true);
                    w.WriteEndObject();
                })).ConfigureAwait(false);
            }
            else
            {
                await WriteAsync(call, 200, File(segments[1], stored.Content.Length, now)).ConfigureAwait(false);
            }

            return;
        }

        if (segments[0] == "batches" && segments.Length >= 2 && _batches.ContainsKey(segments[1]))
        {
            var status = segments.Length == 3 && segments[2] == "cancel" ? "cancelling" : _batches[segments[1]];
            _batches[segments[1]] = status;
            await WriteAsync(call, 200, Batch(segments[1], status, now)).ConfigureAwait(false);
            return;
        }

        await WriteAsync(call, 404, ErrorBodies.OpenAI($"Invalid URL ({method} /v1/{path})", "invalid_request_error", null, null)).ConfigureAwait(false);
    }

    private static byte[] File(string id, int bytes, long now) => JsonBytes.Write((id, bytes, now), static (w, state) =>
    {
        w.WriteStartObject();
        w.WriteString("id"u8, state.id);
        w.WriteString("object"u8, "file"u8);
        w.WriteNumber("bytes"u8, state.bytes);
        w.WriteNumber("created_at"u8, state.now);
        w.WriteString("filename"u8, "upload.jsonl"u8);
        w.WriteString("purpose"u8, "batch"u8);
        w.WriteEndObject();
    });

    private static byte[] Batch(string id, string status, long now) => JsonBytes.Write((id, status, now), static (w, state) =>
    {
        w.WriteStartObject();
        w.WriteString("id"u8, state.id);
        w.WriteString("object"u8, "batch"u8);
        w.WriteString("endpoint"u8, "/v1/chat/completions"u8);
        w.WriteString("status"u8, state.status);
        w.WriteNumber("created_at"u8, state.now);
        w.WriteEndObject();
    });

    private static Task WriteAsync(WireCall call, int status, byte[] body, string contentType = "application/json")
        => WireResponder.WriteErrorAsync(call.Context, new WireError(status, body, contentType), null, call.State, call.CancellationToken);
}
