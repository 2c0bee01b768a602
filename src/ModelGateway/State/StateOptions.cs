using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ModelGateway.State;

/// <summary>What the gateway does with limits while Redis is unreachable.</summary>
public enum RedisFailurePolicy
{
    /// <summary>Keep serving, with each replica holding a local share of every limit.</summary>
    FailOpen,

    /// <summary>Refuse keyed requests with 503 until Redis is back.</summary>
    FailClosed,
}

/// <summary>Where keys, limits and usage live (section <c>State</c>).</summary>
public sealed class StateOptions : IValidatableObject
{
    public const string Section = "State";

    /// <summary>StackExchange.Redis connection string (<c>redis:6379,password=...</c>). Empty: in-memory state for one replica.</summary>
    public string? Redis { get; set; }

    /// <summary>
    /// The longest a request waits on Redis (plus <see cref="WaitMargin"/> of timer slack), whatever
    /// the client library does underneath. A request whose call runs longer is answered by the
    /// failure policy; Redis itself is declared down only when a health probe also goes unanswered.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:00:30")]
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// How long a request's concurrency slot is held in Redis without being renewed: the replica
    /// serving the request renews it every <see cref="LeaseRenewInterval"/>, so a slot outlives a
    /// crashed replica by at most this long.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often a replica renews the leases of the requests it is serving.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00")]
    public TimeSpan LeaseRenewInterval { get; set; } = TimeSpan.FromSeconds(3);

    public RedisFailurePolicy FailurePolicy { get; set; } = RedisFailurePolicy.FailOpen;

    /// <summary>With fail-open, each replica allows this share of a limit (set it to the replica count).</summary>
    [Range(1, 10000)]
    public int FailOpenReplicas { get; set; } = 1;

    /// <summary>How long a looked-up key is trusted before it is read again (revocations are also pushed at once).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan KeyCacheDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// With Redis: how often each replica writes the usage totals it has merged (they are also written
    /// before this replica answers a usage query, and at shutdown). Zero writes every request's usage
    /// at once, one extra Redis call per request.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan UsageFlushInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// With Redis: how often each replica writes its newest provider quota readings and reads the other
    /// replicas' back (quotas). Off the request path; a shorter interval spreads a 429's lesson sooner.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:00:10")]
    public TimeSpan QuotaShareInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    public bool UsesRedis => !string.IsNullOrWhiteSpace(Redis);

    /// <summary>
    /// The slack on top of <see cref="CommandTimeout"/> that the documented bound allows: the timer
    /// that ends a wait fires, and the request resumes, a little after the deadline.
    /// </summary>
    public static readonly TimeSpan WaitMargin = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// How long the health probe that follows a slow or failed command waits before Redis is declared
    /// unreachable: one slow reply on a busy host is not an outage, a probe unanswered this long is.
    /// </summary>
    public TimeSpan OutageConfirmation => CommandTimeout * 4 > TimeSpan.FromSeconds(1) ? CommandTimeout * 4 : TimeSpan.FromSeconds(1);

    /// <summary>Rules between settings, run by the source-generated validator after the ranges.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // A renewal may itself wait up to CommandTimeout; with two renewals per lease, one lost or late
        // renewal never lets a running request's slot expire.
        if ((LeaseRenewInterval * 2) + CommandTimeout > LeaseDuration)
        {
            yield return new ValidationResult(
                $"State:LeaseRenewInterval ({LeaseRenewInterval}) must be at most half of State:LeaseDuration ({LeaseDuration}) minus State:CommandTimeout ({CommandTimeout}), so one late renewal never frees a running request's slot.",
                [nameof(LeaseRenewInterval)]);
        }
    }
}

/// <summary>How clients authenticate (section <c>Auth</c>).</summary>
public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary><c>keys</c>: virtual API keys are required. <c>none</c>: anyone may call anything (the demo).</summary>
    public AuthMode Mode { get; set; } = AuthMode.Keys;
}

/// <summary>Whether clients need a virtual key.</summary>
public enum AuthMode
{
    Keys,
    None,
}

/// <summary>The admin API (section <c>Admin</c>).</summary>
public sealed class AdminOptions
{
    public const string Section = "Admin";

    /// <summary>The master key for <c>/admin</c>. Unset: the admin API is off. Also read from <c>MODELGATEWAY_MASTER_KEY</c>.</summary>
    public string? MasterKey { get; set; }

    /// <summary>Serve <c>/admin</c> and <c>/dashboard</c> only on this port (0: on every port).</summary>
    [Range(0, 65535)]
    public int Port { get; set; }

    public bool Enabled => !string.IsNullOrEmpty(MasterKey);
}

[OptionsValidator]
internal sealed partial class StateOptionsValidator : IValidateOptions<StateOptions>;

[OptionsValidator]
internal sealed partial class AdminOptionsValidator : IValidateOptions<AdminOptions>;

/// <summary>Keys mode is useless without a way to create keys: it needs the master key.</summary>
internal sealed class AuthOptionsValidator(IOptions<AdminOptions> admin) : IValidateOptions<AuthOptions>
{
    public ValidateOptionsResult Validate(string? name, AuthOptions options)
        => options.Mode == AuthMode.Keys && !admin.Value.Enabled
            ? ValidateOptionsResult.Fail("Auth:Mode is 'keys' but no master key is set (Admin:MasterKey or MODELGATEWAY_MASTER_KEY), so no key could ever be created. Set one, or set Auth:Mode to 'none' for a gateway without keys.")
            : ValidateOptionsResult.Success;
}
