namespace ModelGateway.FakeUpstream.Internal;

/// <summary>Keeps received requests in arrival order and wakes those waiting for a matching one.</summary>
internal sealed class RequestRecorder
{
    private readonly Lock _gate = new();
    private readonly List<RecordedRequest> _requests = [];
    private readonly List<Waiter> _waiters = [];
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public IReadOnlyList<RecordedRequest> Snapshot()
    {
        lock (_gate)
        {
            return [.. _requests];
        }
    }

    /// <summary>Counts a request without keeping it (fast mode).</summary>
    public void CountUnrecorded() => Interlocked.Increment(ref _count);

    public void Add(RecordedRequest request)
    {
        lock (_gate)
        {
            _requests.Add(request);
            _count++;
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                var waiter = _waiters[i];
                if (waiter.TryMatch(request))
                {
                    _waiters.RemoveAt(i);
                }
            }
        }
    }

    public void Clear()
    {
        lock (_gate)
        {
            _requests.Clear();
            _count = 0;
        }
    }

    public async Task<RecordedRequest> WaitAsync(Func<RecordedRequest, bool> predicate, TimeSpan timeout)
    {
        Waiter waiter;
        lock (_gate)
        {
            foreach (var request in _requests)
            {
                if (predicate(request))
                {
                    return request;
                }
            }

            waiter = new Waiter(predicate);
            _waiters.Add(waiter);
        }

        try
        {
            return await waiter.Task.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            int seen;
            lock (_gate)
            {
                _waiters.Remove(waiter);
                seen = _requests.Count;
            }

            throw new TimeoutException($"No matching request arrived within {timeout} ({seen} request(s) recorded).");
        }
    }

    private sealed class Waiter(Func<RecordedRequest, bool> predicate)
    {
        private readonly TaskCompletionSource<RecordedRequest> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<RecordedRequest> Task => _completion.Task;

        public bool TryMatch(RecordedRequest request)
        {
            try
            {
                if (!predicate(request))
                {
                    return false;
                }

                _completion.TrySetResult(request);
            }
            catch (Exception ex)
            {
                _completion.TrySetException(ex);
            }

            return true;
        }
    }
}
