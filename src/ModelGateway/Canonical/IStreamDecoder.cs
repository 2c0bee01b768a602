namespace ModelGateway.Canonical;

/// <summary>
/// Turns one upstream stream into canonical events, pulled by the relay on its own loop: no extra
/// task or pipe per stream. <see cref="TryRead"/> decodes what is already buffered without I/O;
/// <see cref="FillAsync"/> reads more from the network. The relay flushes to the client between the
/// two, so events go out chunk by chunk.
/// </summary>
internal interface IStreamDecoder : IDisposable
{
    /// <summary>The next event decodable from buffered bytes; false when more input is needed (or the stream ended).</summary>
    /// <exception cref="System.IO.InvalidDataException">The upstream sent something that is not its wire format.</exception>
    bool TryRead(out StreamEvent streamEvent);

    /// <summary>Reads more bytes from the upstream; false once its body has ended.</summary>
    ValueTask<bool> FillAsync(CancellationToken cancellationToken);

    /// <summary>True once the upstream signalled the end of its answer in its own wire (<c>[DONE]</c>, <c>message_stop</c>…).</summary>
    bool IsComplete { get; }
}

/// <summary>
/// Writes canonical events in one client protocol's stream wire. One encoder per client stream: it
/// keeps what its wire must repeat or close (ids, open content blocks, tool-call indexes).
/// </summary>
internal interface IStreamEncoder
{
    /// <summary>Writes zero or more wire events for <paramref name="streamEvent"/>.</summary>
    void Write(in StreamEvent streamEvent, System.Buffers.IBufferWriter<byte> output);

    /// <summary>Writes what ends a complete stream (<c>data: [DONE]</c>, <c>message_stop</c>, <c>response.completed</c>…).</summary>
    void Complete(System.Buffers.IBufferWriter<byte> output);

    /// <summary>Writes the in-band error event that tells the client the stream broke.</summary>
    void Fail(Wire.ApiError error, System.Buffers.IBufferWriter<byte> output);
}
