using ModelGateway.Protocols.OpenAI;

namespace ModelGateway.Protocols;

/// <summary>
/// For a named-event protocol's encoder that can take over a pass-through stream mid-way (continuation
/// onto a translated deployment): it watches the events the client has already been sent, and collects
/// their answer text for the continuation's prefill.
/// </summary>
internal interface IPassThroughObserver
{
    void Observe(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> data, IContentSink? text);
}
