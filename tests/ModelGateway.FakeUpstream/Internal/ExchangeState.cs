namespace ModelGateway.FakeUpstream.Internal;

/// <summary>How far one request's handling got; decides its <see cref="RequestOutcome"/>.</summary>
internal sealed class ExchangeState
{
    /// <summary>The fake aborted the connection on purpose.</summary>
    public bool ServerFault { get; set; }

    /// <summary>Every byte the fake meant to send was handed to the transport.</summary>
    public bool ResponseComplete { get; set; }

    /// <summary>A write or flush reported that the client is gone.</summary>
    public bool ClientGone { get; set; }

    public RequestOutcome Outcome(bool requestAborted) =>
        ServerFault ? RequestOutcome.ServerFault
        : ResponseComplete ? RequestOutcome.Completed
        : ClientGone || requestAborted ? RequestOutcome.ClientAborted
        : RequestOutcome.Completed;
}
