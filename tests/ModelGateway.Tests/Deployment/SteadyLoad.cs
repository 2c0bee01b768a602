using System.Collections.Concurrent;
using System.Diagnostics;

namespace ModelGateway.Tests.Deploy;

/// <summary>One request the load sent, and how it ended.</summary>
internal sealed record LoadOutcome(bool Streamed, TimeSpan StartedAt, TimeSpan EndedAt, bool Ok, StreamEnd? End, int Status, string Detail);

/// <summary>
/// Steady mixed traffic through the load balancer: a few clients sending plain chats and a few reading
/// streams, each one request after another with a short pause, until stopped. Every outcome is kept.
/// </summary>
internal sealed class SteadyLoad : IAsyncDisposable
{
    private readonly ConcurrentQueue<LoadOutcome> _outcomes = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Stopwatch _clock;
    private readonly Task[] _clients;

    private SteadyLoad(HttpClient http, string model, string bearer, int plainClients, int streamClients, Stopwatch clock)
    {
        _clock = clock;
        _clients = [
            .. Enumerable.Range(0, plainClients).Select(_ => RunAsync(http, model, bearer, streamed: false)),
            .. Enumerable.Range(0, streamClients).Select(_ => RunAsync(http, model, bearer, streamed: true)),
        ];
    }

    public int Concurrency => _clients.Length;

    public IReadOnlyCollection<LoadOutcome> Outcomes => _outcomes;

    /// <summary>Starts the load; <paramref name="clock"/> dates every outcome.</summary>
    public static SteadyLoad Start(HttpClient http, string model, string bearer, int plainClients, int streamClients, Stopwatch clock)
        => new(http, model, bearer, plainClients, streamClients, clock);

    /// <summary>Stops sending and waits for the requests in flight to end.</summary>
    public async Task<IReadOnlyList<LoadOutcome>> StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_clients).WaitAsync(TimeSpan.FromSeconds(60));
        return [.. _outcomes];
    }

    private async Task RunAsync(HttpClient http, string model, string bearer, bool streamed)
    {
        // Spread the clients' first requests so they do not move in lockstep.
        await Task.Delay(Random.Shared.Next(0, 100));
        while (!_stop.IsCancellationRequested)
        {
            var started = _clock.Elapsed;
            if (streamed)
            {
                var result = await ChatCalls.StreamAsync(http, model, bearer);
                _outcomes.Enqueue(new LoadOutcome(true, started, _clock.Elapsed, result.End == StreamEnd.Done, result.End, result.Status, result.Detail));
            }
            else
            {
                var (status, body) = await ChatCalls.CompleteAsync(http, model, bearer);
                _outcomes.Enqueue(new LoadOutcome(false, started, _clock.Elapsed, status == 200, null, status, status == 200 ? "ok" : body));
            }

            try
            {
                await Task.Delay(50, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync();
        }

        _stop.Dispose();
    }
}
