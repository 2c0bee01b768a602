namespace ModelGateway.FakeUpstream.Internal.Wires;

/// <summary>Which wire and operation a request addresses, and the model named in its path if any.</summary>
internal readonly record struct WireRoute(UpstreamWire Wire, string Operation, string? PathModel);

/// <summary>One request on a provider wire, with its whole body already read and recorded.</summary>
internal sealed class WireCall
{
    public required HttpContext Context { get; init; }

    public required WireRoute Route { get; init; }

    public required byte[] Body { get; init; }

    public required ExchangeState State { get; init; }

    public required CancellationToken CancellationToken { get; init; }
}

/// <summary>What every wire shares: options, behaviour selection, the response writer and the clock.</summary>
internal sealed class WireServices(FakeUpstreamOptions options, BehaviorRegistry behaviors, WireResponder responder, TimeProvider time)
{
    public FakeUpstreamOptions Options { get; } = options;

    public WireResponder Responder { get; } = responder;

    public TimeProvider Time { get; } = time;

    /// <summary>The behaviour for one request; fast mode ignores queues and per-model behaviours.</summary>
    public UpstreamBehavior Take(string model) => Options.FastMode ? behaviors.Default : behaviors.Take(model);
}

/// <summary>
/// One provider's wire format: which paths it serves, which model a request names, and the whole handling of a
/// request (authentication, validation, behaviour, response) in that provider's own shapes.
/// </summary>
internal abstract class ProviderWire
{
    /// <summary>Claims a request by its method and path; false leaves it to the other wires.</summary>
    public abstract bool TryMatch(HttpRequest request, out WireRoute route);

    /// <summary>The model to record and to choose a behaviour by.</summary>
    public virtual string? ModelOf(WireRoute route, byte[] body) => route.PathModel;

    public abstract Task HandleAsync(WireCall call);
}
