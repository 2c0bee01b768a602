namespace ModelGateway.FakeUpstream.Internal;

/// <summary>
/// Chooses the behaviour for a request. Precedence: the model's one-shot queue, the global one-shot queue,
/// the model's sticky behaviour, then the default.
/// </summary>
internal sealed class BehaviorRegistry
{
    private readonly Lock _gate = new();
    private readonly Queue<UpstreamBehavior> _queue = new();
    private readonly Dictionary<string, Queue<UpstreamBehavior>> _modelQueues = new(StringComparer.Ordinal);
    private readonly Dictionary<string, UpstreamBehavior> _sticky = new(StringComparer.Ordinal);
    private volatile UpstreamBehavior _default = new();

    public UpstreamBehavior Default
    {
        get => _default;
        set => _default = value ?? throw new ArgumentNullException(nameof(value));
    }

    public void SetForModel(string model, UpstreamBehavior behavior)
    {
        lock (_gate)
        {
            _sticky[model] = behavior;
        }
    }

    public void ClearForModel(string model)
    {
        lock (_gate)
        {
            _sticky.Remove(model);
        }
    }

    public void Enqueue(UpstreamBehavior behavior)
    {
        lock (_gate)
        {
            _queue.Enqueue(behavior);
        }
    }

    public void Enqueue(string model, UpstreamBehavior behavior)
    {
        lock (_gate)
        {
            if (!_modelQueues.TryGetValue(model, out var queue))
            {
                queue = new Queue<UpstreamBehavior>();
                _modelQueues.Add(model, queue);
            }

            queue.Enqueue(behavior);
        }
    }

    private readonly Dictionary<string, QuotaWindow> _quotas = new(StringComparer.Ordinal);

    /// <summary>Enforces a sliding-window request quota on one model (null removes it).</summary>
    public void SetQuota(string model, UpstreamQuota? quota, TimeProvider time)
    {
        lock (_gate)
        {
            if (quota is null)
            {
                _quotas.Remove(model);
            }
            else
            {
                _quotas[model] = new QuotaWindow(quota, time);
            }
        }
    }

    /// <summary>429s the model's quota has refused so far.</summary>
    public long QuotaRefusals(string model)
    {
        lock (_gate)
        {
            return _quotas.TryGetValue(model, out var window) ? window.Refused : 0;
        }
    }

    /// <summary>Outage windows; set once by the server before any request (null: none can be scheduled).</summary>
    public OutageSchedule? Outages { get; set; }

    /// <summary>
    /// Picks the behaviour for one request: a scheduled outage's error first (it consumes nothing queued, as a
    /// provider that is down answers everything alike), else a queued or set behaviour, then the model's quota.
    /// </summary>
    public UpstreamBehavior Take(string? model)
    {
        if (model is not null && Outages is { Any: true } outages && outages.Active(model) is { } down)
        {
            return down;
        }

        var behavior = TakeUnlimited(model);
        QuotaWindow? quota = null;
        if (model is not null)
        {
            lock (_gate)
            {
                _quotas.TryGetValue(model, out quota);
            }
        }

        return quota is null ? behavior : quota.Apply(behavior);
    }

    private UpstreamBehavior TakeUnlimited(string? model)
    {
        lock (_gate)
        {
            if (model is not null && _modelQueues.TryGetValue(model, out var modelQueue) && modelQueue.TryDequeue(out var queued))
            {
                return queued;
            }

            if (_queue.TryDequeue(out var global))
            {
                return global;
            }

            if (model is not null && _sticky.TryGetValue(model, out var sticky))
            {
                return sticky;
            }
        }

        return _default;
    }

    /// <summary>Models that have a sticky behaviour or queued behaviours waiting.</summary>
    public List<string> KnownModels()
    {
        lock (_gate)
        {
            var models = new List<string>(_sticky.Keys);
            foreach (var (model, queue) in _modelQueues)
            {
                if (queue.Count > 0 && !_sticky.ContainsKey(model))
                {
                    models.Add(model);
                }
            }

            return models;
        }
    }
}
