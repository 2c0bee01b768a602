using ModelGateway.Configuration;
using ModelGateway.Protocols;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Wire;

namespace ModelGateway.Providers;

/// <summary>
/// The cheap request a health probe sends to a deployment whose circuit is open. It is written in a
/// client API's shape so that it travels the road a real request does: the deployment's adapter passes
/// it through or translates it, and classifies the answer. The default asks for one token.
/// </summary>
internal sealed class ProbeRequest(ClientProtocol protocol, Operation operation, string path, byte[] body)
{
    /// <summary>One token of chat: the cheapest call that still runs the model.</summary>
    public static readonly ProbeRequest OneTokenChat = new(OpenAIChatProtocol.Instance, Operation.ChatCompletions, "/v1/chat/completions",
        """{"model":"probe","messages":[{"role":"user","content":"Reply with OK."}],"max_tokens":1,"stream":false}"""u8.ToArray());

    /// <summary>One token of a legacy completion, for deployments that serve only those.</summary>
    public static readonly ProbeRequest OneTokenCompletion = new(OpenAIChatProtocol.Instance, Operation.Completions, "/v1/completions",
        """{"model":"probe","prompt":"OK","max_tokens":1,"stream":false}"""u8.ToArray());

    /// <summary>The embedding of one word, for embedding models.</summary>
    public static readonly ProbeRequest OneWordEmbedding = new(OpenAIChatProtocol.Instance, Operation.Embeddings, "/v1/embeddings",
        """{"model":"probe","input":"ok"}"""u8.ToArray());

    public ClientProtocol Protocol { get; } = protocol;

    public Operation Operation { get; } = operation;

    /// <summary>The client path the request reads as if it came in on.</summary>
    public string Path { get; } = path;

    public ReadOnlyMemory<byte> Body { get; } = body;

    /// <summary>The cheapest request the deployment serves: chat, else a completion, else an embedding.</summary>
    public static ProbeRequest For(Deployment deployment)
        => deployment.Has(Capabilities.Chat) ? OneTokenChat
            : deployment.Has(Capabilities.Completions) ? OneTokenCompletion
            : deployment.Has(Capabilities.Embeddings) ? OneWordEmbedding
            : OneTokenChat;
}
