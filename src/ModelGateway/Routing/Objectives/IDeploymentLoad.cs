namespace ModelGateway.Routing.Objectives;

/// <summary>
/// Load a deployment carries that the gateway's own in-flight count cannot see: requests queued on a
/// self-hosted server by every replica. A metrics scraper (vLLM <c>vllm:num_requests_waiting</c>, TGI, SGLang)
/// calls <see cref="ReportQueue"/> after each scrape; the objective's TTFT prediction then adds the queue.
/// Implemented by <see cref="LiveTtft"/>, reachable as <c>deployment.State.Latency.Live</c>.
/// </summary>
internal interface IDeploymentLoad
{
    /// <summary>Records what the server said: requests waiting for a slot, and requests running.</summary>
    void ReportQueue(int waiting, int running);

    /// <summary>Requests waiting on the server per its last fresh report; 0 without one.</summary>
    int QueuedUpstream(long now);
}
