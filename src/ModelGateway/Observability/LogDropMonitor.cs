using Serilog.Sinks.Async;

namespace ModelGateway.Observability;

/// <summary>
/// Counts the log events the console's background writer had to drop because its buffer was full
/// (the console, or whatever reads it, could not keep up). Exported as
/// <c>modelgateway.log.events.dropped</c>: the data plane never waits for the log.
/// </summary>
internal sealed class LogDropMonitor : IAsyncLogEventSinkMonitor
{
    private IAsyncLogEventSinkInspector? _inspector;

    public long Dropped => Volatile.Read(ref _inspector)?.DroppedMessagesCount ?? 0;

    public void StartMonitoring(IAsyncLogEventSinkInspector inspector) => Volatile.Write(ref _inspector, inspector);

    public void StopMonitoring(IAsyncLogEventSinkInspector inspector)
    {
        // Keep the last inspector: its count stays readable after the logger is disposed.
    }
}
