using Microsoft.Extensions.Options;
using ModelGateway.State;

namespace ModelGateway.Endpoints;

/// <summary>Says at start-up how the gateway is set up, and says it loudly when anyone may call it.</summary>
internal sealed partial class StartupReport(IOptions<AuthOptions> auth, IOptions<AdminOptions> admin, IOptions<StateOptions> state, ILogger<StartupReport> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (auth.Value.Mode == AuthMode.None)
        {
            LogNoAuth(logger);
        }

        LogSetup(logger, auth.Value.Mode.ToString().ToLowerInvariant(), state.Value.UsesRedis ? "redis" : "in-memory (one replica)",
            admin.Value.Enabled ? (admin.Value.Port > 0 ? $"on port {admin.Value.Port}" : "on") : "off (no master key)");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning,
        Message = "AUTHENTICATION IS OFF (Auth:Mode=none): any client can call every model with no key, no limits and no budget. For anything but a demo set Auth__Mode=keys and a master key (MODELGATEWAY_MASTER_KEY).")]
    private static partial void LogNoAuth(ILogger logger);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Information, Message = "Auth: {Auth}; state: {State}; admin API: {Admin}")]
    private static partial void LogSetup(ILogger logger, string auth, string state, string admin);
}
