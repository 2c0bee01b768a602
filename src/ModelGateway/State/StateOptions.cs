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
public sealed class StateOptions
{
    public const string Section = "State";

    /// <summary>StackExchange.Redis connection string (<c>redis:6379,password=...</c>). Empty: in-memory state for one replica.</summary>
    public string? Redis { get; set; }

    /// <summary>How Redis calls fail fast: no request waits longer than this on Redis.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:00:30")]
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromMilliseconds(250);

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

    public bool UsesRedis => !string.IsNullOrWhiteSpace(Redis);
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
