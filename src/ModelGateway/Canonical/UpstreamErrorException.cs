namespace ModelGateway.Canonical;

/// <summary>
/// An adapter could not send an attempt and says why in resilience's terms: a client URL it may not
/// fetch, a credential it could not obtain. Resilience treats it as that classified failure (a client
/// error goes back to the client; a misconfiguration fails over), never as a transport error.
/// </summary>
internal sealed class UpstreamErrorException(UpstreamError error) : Exception(error.Detail)
{
    public UpstreamError Error { get; } = error;
}
