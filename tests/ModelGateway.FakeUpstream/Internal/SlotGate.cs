using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace ModelGateway.FakeUpstream.Internal;

/// <summary>
/// Queueing capacity, as a self-hosted server has it: at most <c>slots</c> requests run at once, the rest
/// wait in a queue (which adds their wait to the time to first token). Reports what it sees the way
/// vLLM's <c>/metrics</c> endpoint does.
/// </summary>
internal sealed class SlotGate(int slots)
{
    private readonly SemaphoreSlim _slots = new(slots, slots);
    private int _running;
    private int _waiting;
    private int _maxRunning;
    private int _inside;
    private int _maxInside;
    private long _scrapes;
    private long _heldTicks;
    private long _held;

    public int Slots { get; } = slots;

    public int Running => Volatile.Read(ref _running);

    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>The most requests ever running at once: never more than <see cref="Slots"/>.</summary>
    public int MaxRunning => Volatile.Read(ref _maxRunning);

    /// <summary>The most requests ever inside the box at once, running or queued: what a fleet-wide limit keeps down.</summary>
    public int MaxInside => Volatile.Read(ref _maxInside);

    /// <summary>Requests the <c>/metrics</c> endpoint has answered.</summary>
    public long Scrapes => Interlocked.Read(ref _scrapes);

    /// <summary>How long a request held its slot on average (its real service time, timer slack included); zero before any.</summary>
    public TimeSpan MeanSlotTime
    {
        get
        {
            var held = Interlocked.Read(ref _held);
            return held == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Interlocked.Read(ref _heldTicks) / (double)Stopwatch.Frequency / held);
        }
    }

    public async Task RunAsync(Func<Task> work, CancellationToken cancellationToken)
    {
        RaiseMax(ref _maxInside, Interlocked.Increment(ref _inside));
        try
        {
            Interlocked.Increment(ref _waiting);
            try
            {
                await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _waiting);
            }

            try
            {
                RaiseMax(ref _maxRunning, Interlocked.Increment(ref _running));
                var started = Stopwatch.GetTimestamp();
                try
                {
                    await work().ConfigureAwait(false);
                }
                finally
                {
                    Interlocked.Add(ref _heldTicks, Stopwatch.GetTimestamp() - started);
                    Interlocked.Increment(ref _held);
                }
            }
            finally
            {
                Interlocked.Decrement(ref _running);
                _slots.Release();
            }
        }
        finally
        {
            Interlocked.Decrement(ref _inside);
        }
    }

    private static void RaiseMax(ref int max, int value)
    {
        int current;
        while (value > (current = Volatile.Read(ref max)) && Interlocked.CompareExchange(ref max, value, current) != current)
        {
        }
    }

    /// <summary>vLLM's Prometheus text: waiting, running and KV-cache use (running slots as a fraction).</summary>
    public string Metrics(string model)
    {
        Interlocked.Increment(ref _scrapes);
        var running = Running;
        var labels = "{model_name=\"" + model + "\"}";
        var text = new StringBuilder(512);
        text.Append("# HELP vllm:num_requests_running Number of requests in model execution batches.\n");
        text.Append("# TYPE vllm:num_requests_running gauge\n");
        text.Append("vllm:num_requests_running").Append(labels).Append(' ').Append(running.ToString(CultureInfo.InvariantCulture)).Append('\n');
        text.Append("# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n");
        text.Append("# TYPE vllm:num_requests_waiting gauge\n");
        text.Append("vllm:num_requests_waiting").Append(labels).Append(' ').Append(Waiting.ToString(CultureInfo.InvariantCulture)).Append('\n');
        text.Append("# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n");
        text.Append("# TYPE vllm:kv_cache_usage_perc gauge\n");
        text.Append("vllm:kv_cache_usage_perc").Append(labels).Append(' ').Append((running / (double)Slots * 0.9).ToString("0.####", CultureInfo.InvariantCulture)).Append('\n');
        return text.ToString();
    }
}
