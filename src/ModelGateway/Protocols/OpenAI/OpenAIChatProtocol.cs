using System.Buffers;
using ModelGateway.Canonical;
using ModelGateway.Forwarding;
using ModelGateway.Providers;
using ModelGateway.Wire;

namespace ModelGateway.Protocols.OpenAI;

/// <summary>OpenAI's chat completions (and legacy completions and embeddings) as clients speak it.</summary>
internal sealed class OpenAIChatProtocol : ClientProtocol
{
    public static readonly OpenAIChatProtocol Instance = new();

    public override WireFormat Wire => WireFormat.OpenAIChat;

    public override string Api => "chat_completions";

    public override bool TryParse(ReadOnlySpan<byte> body, Operation operation, int maxDepth, out RequestInfo info, out RequestProblem problem)
        => RequestParser.TryParse(body, operation, maxDepth, out info, out problem);

    public override ChatRequest ReadCanonical(GatewayRequest request) => OpenAIRequestReader.Read(request.BodyMemory);

    public override IStreamEncoder CreateEncoder(GatewayRequest request, string model, long created)
        => new OpenAIStreamEncoder(model, created, request.Info.IncludeUsage == true);

    public override void WriteResponse(GatewayRequest request, ChatResponse response, string model, long created, IBufferWriter<byte> output)
        => OpenAIResponseWriter.Write(response, model, created, output);

    public override EmbeddingRequest ReadEmbeddings(GatewayRequest request) => OpenAIEmbeddings.Read(request.Body);

    public override void WriteEmbeddings(GatewayRequest request, EmbeddingResponse response, string model, IBufferWriter<byte> output)
        => OpenAIEmbeddings.Write(response, request.Embeddings.Base64, model, output);
}
