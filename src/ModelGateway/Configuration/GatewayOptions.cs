using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ModelGateway.Configuration;

/// <summary>
/// Host-level settings (section <c>Gateway</c> of appsettings, or <c>Gateway__*</c> environment
/// variables). The routing file holds providers, deployments and routes; this holds the process.
/// </summary>
public sealed class GatewayOptions
{
    public const string Section = "Gateway";

    /// <summary>The routing file. Also set by <c>--config PATH</c> or <c>MODELGATEWAY_CONFIG</c>; empty serves the built-in demo.</summary>
    public string? ConfigPath { get; set; }

    /// <summary>How often the routing file (and any key file it names) is checked for edits.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan ConfigPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Load the tokenizer vocabularies the deployments use at start-up instead of on the first request
    /// that needs an exact count (one near a context window, or a stream without upstream usage).
    /// About 45 MB of memory per vocabulary, against a one-off pause of a few hundred milliseconds.
    /// </summary>
    public bool PreloadTokenizers { get; set; }

    /// <summary>Request bodies above this are refused with 413 before they are buffered.</summary>
    [Range(1024, int.MaxValue)]
    public int MaxRequestBodyBytes { get; set; } = 32 * 1024 * 1024;

    /// <summary>JSON nested deeper than this is refused with 400.</summary>
    [Range(8, 1024)]
    public int MaxJsonDepth { get; set; } = 64;

    /// <summary>A non-streamed upstream answer larger than this is treated as a bad response (502).</summary>
    [Range(1024, int.MaxValue)]
    public int MaxUpstreamResponseBytes { get; set; } = 128 * 1024 * 1024;

    /// <summary>A single upstream SSE event larger than this breaks the stream.</summary>
    [Range(1024, int.MaxValue)]
    public int MaxUpstreamEventBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Once every choice has finished, how long to wait for the usage chunk or <c>[DONE]</c> before ending the stream.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan FinishGrace { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>After an in-band error event, how long to let it reach the client before aborting the broken stream.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:05")]
    public TimeSpan StreamAbortGrace { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Share of traffic that retries and failovers may add, per replica.</summary>
    [Range(0.0, 10.0)]
    public double RetryBudgetRatio { get; set; } = 0.2;

    /// <summary>Retries per second always allowed, so a quiet gateway can still fail over.</summary>
    [Range(0, 100000)]
    public int RetryBudgetMinimumPerSecond { get; set; } = 5;
}

[OptionsValidator]
internal sealed partial class GatewayOptionsValidator : IValidateOptions<GatewayOptions>;
