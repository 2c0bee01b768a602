using Microsoft.Extensions.Primitives;
using Serilog;
using Serilog.Core;
using Serilog.Events;

namespace ModelGateway.Observability;

/// <summary>
/// Log levels from <c>Serilog:MinimumLevel</c> (<c>Default</c> and <c>Override:&lt;category&gt;</c>), applied
/// again whenever configuration reloads, so an operator can turn a category up or down by editing
/// <c>appsettings.json</c> (or any reloading source) without a restart.
/// </summary>
internal sealed class LogLevels
{
    private readonly IConfigurationSection _section;
    private readonly LoggingLevelSwitch _default = new(LogEventLevel.Information);
    private readonly Dictionary<string, LoggingLevelSwitch> _overrides = new(StringComparer.OrdinalIgnoreCase);

    public LogLevels(IConfiguration configuration)
    {
        _section = configuration.GetSection("Serilog:MinimumLevel");
        foreach (var child in _section.GetSection("Override").GetChildren())
        {
            _overrides[child.Key] = new LoggingLevelSwitch(Parse(child.Value, LogEventLevel.Information));
        }

        Apply();
        ChangeToken.OnChange(configuration.GetReloadToken, Apply);
    }

    /// <summary>Wires the switches into a logger configuration.</summary>
    public void Configure(LoggerConfiguration logger)
    {
        logger.MinimumLevel.ControlledBy(_default);
        foreach (var (category, level) in _overrides)
        {
            logger.MinimumLevel.Override(category, level);
        }
    }

    private void Apply()
    {
        // "Default" may also be given as the section's own value ("MinimumLevel": "Debug").
        _default.MinimumLevel = Parse(_section["Default"] ?? _section.Value, LogEventLevel.Information);
        foreach (var (category, level) in _overrides)
        {
            level.MinimumLevel = Parse(_section[$"Override:{category}"], _default.MinimumLevel);
        }
    }

    /// <summary>One above Fatal: nothing is written (Serilog's <c>LevelAlias.Off</c>).</summary>
    internal const LogEventLevel Off = LevelAlias.Off;

    internal static LogEventLevel Parse(string? text, LogEventLevel fallback)
    {
        if (string.Equals(text, "Off", StringComparison.OrdinalIgnoreCase) || string.Equals(text, "None", StringComparison.OrdinalIgnoreCase))
        {
            return Off;
        }

        return Enum.TryParse<LogEventLevel>(text, ignoreCase: true, out var level) && Enum.IsDefined(level) ? level : fallback;
    }
}
