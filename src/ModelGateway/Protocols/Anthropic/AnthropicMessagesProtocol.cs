using System.Buffers;
using System.Text.Json;
using ModelGateway.Canonical;
using ModelGateway.Forwarding;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Providers;
using ModelGateway.Routing;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.Anthropic;

/// <summary>
/// Anthropic's Messages API as clients speak it (<c>POST /v1/messages</c>): the Anthropic SDKs and Claude
/// Code. <c>anthropic</c> deployments are served byte for byte with only <c>model</c> spliced; every other
/// deployment through the canonical model, with a stream the client cannot tell from Anthropic's.
/// </summary>
internal sealed class AnthropicMessagesProtocol : ClientProtocol
{
    public static readonly AnthropicMessagesProtocol Instance = new(countOnly: false);

    /// <summary><c>/v1/messages/count_tokens</c>: the same body without the required <c>max_tokens</c>.</summary>
    public static readonly AnthropicMessagesProtocol CountTokens = new(countOnly: true);

    private readonly bool _countOnly;

    private AnthropicMessagesProtocol(bool countOnly) => _countOnly = countOnly;

    public override WireFormat Wire => WireFormat.AnthropicMessages;

    public override string Api => "messages";

    public override NamedEventInspector NamedEvents => MessagesEventInspector.Instance;

    public override bool TryParse(ReadOnlySpan<byte> body, Operation operation, int maxDepth, out RequestInfo info, out RequestProblem problem)
        => MessagesRequestParser.TryParse(body, maxDepth, _countOnly, out info, out problem);

    public override ChatRequest ReadCanonical(GatewayRequest request) => MessagesRequestReader.Read(request.BodyMemory);

    public override IStreamEncoder CreateEncoder(GatewayRequest request, string model, long created)
        => new MessagesStreamEncoder(request, model, ThinkingOmitted(request.Body));

    public override void WriteResponse(GatewayRequest request, ChatResponse response, string model, long created, IBufferWriter<byte> output)
    {
        var usage = response.Usage;
        if (!usage.Reported)
        {
            usage.Input = request.Decision?.EstimatedInputTokens ?? TokenEstimator.Estimate(request.Info);
            usage.Output = (System.Text.Encoding.UTF8.GetByteCount(response.Text) + 3) / 4;
        }

        MessagesResponseWriter.Write(response, model, usage, ThinkingOmitted(request.Body), output);
    }

    public override bool TryInspectBody(ReadOnlySpan<byte> body, out ResponseFacts facts) => MessagesEventInspector.TryInspectBody(body, out facts);

    public override Task WriteErrorAsync(HttpContext context, ApiError error) => AnthropicErrorShape.WriteAsync(context, error);

    public override void WriteStreamError(ApiError error, IBufferWriter<byte> output) => AnthropicErrorShape.WriteEvent(error, null, output);

    // thinking.display "omitted": the client wants thinking blocks signed but without their text.
    private static bool ThinkingOmitted(ReadOnlySpan<byte> body)
    {
        if (body.IndexOf("\"omitted\""u8) < 0)
        {
            return false;
        }

        var reader = new Utf8JsonReader(body);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isThinking = reader.ValueTextEquals("thinking"u8);
            reader.Read();
            if (!isThinking || reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isDisplay = reader.ValueTextEquals("display"u8);
                reader.Read();
                if (isDisplay && reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("omitted"u8))
                {
                    return true;
                }

                reader.Skip();
            }

            return false;
        }

        return false;
    }
}
