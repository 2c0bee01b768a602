using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ModelGateway.Hosting;

/// <summary>
/// How the gateway leaves a fleet on SIGTERM (section <c>Shutdown</c>): readiness turns false at once,
/// the listeners stay open for <see cref="Delay"/>, then close while requests in flight get up to
/// <see cref="Grace"/> to finish. Keep the orchestrator's kill deadline (Kubernetes'
/// <c>terminationGracePeriodSeconds</c>) above <see cref="Total"/>.
/// </summary>
public sealed class ShutdownOptions
{
    public const string Section = "Shutdown";

    /// <summary>
    /// Time after <see cref="Grace"/> for what comes last: the error events of streams the grace cut
    /// (each waits <c>Gateway:StreamAbortGrace</c>, at most 5 s) and the final usage and settle writes to Redis.
    /// </summary>
    public static readonly TimeSpan EndAllowance = TimeSpan.FromSeconds(5);

    /// <summary>
    /// After SIGTERM, how long the gateway keeps serving with readiness false before it stops accepting
    /// connections: load balancers and Kubernetes endpoints need a few seconds to stop sending new work.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan Delay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Once new connections are refused, how long requests and streams in flight may run on. Streams
    /// still open at the end get an in-band error event, then their connection is closed.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan Grace { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest a shutdown takes: <see cref="Delay"/> + <see cref="Grace"/> + <see cref="EndAllowance"/>.</summary>
    public TimeSpan Total => Delay + Grace + EndAllowance;
}

[OptionsValidator]
internal sealed partial class ShutdownOptionsValidator : IValidateOptions<ShutdownOptions>;
