using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Options;
using ModelGateway.Configuration;
using Serilog.Events;

namespace ModelGateway;

/// <summary>
/// Start-up failures an admin fixes from one message: a bad routing file (every error with its path),
/// an invalid or mistyped setting. Program prints that message alone and exits 1; the host's own
/// "Hosting failed to start" line, with its .NET stack trace and build paths, is kept out of the log.
/// </summary>
internal static class StartupFailure
{
    private const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    /// <summary>The message for the admin, when <paramref name="exception"/> is a failure of this kind.</summary>
    public static bool TryDescribe(Exception exception, [NotNullWhen(true)] out string? message)
    {
        message = exception switch
        {
            ConfigurationLoadException load => load.Message,
            OptionsValidationException options => "Invalid gateway settings: " + string.Join("; ", options.Failures),

            // A setting of the wrong type (e.g. "5s" where a TimeSpan like 00:00:05 is expected).
            InvalidOperationException conversion when conversion.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal)
                => "Invalid gateway settings: " + conversion.Message + (conversion.InnerException is null ? string.Empty : " " + conversion.InnerException.Message),
            _ => null,
        };
        return message is not null;
    }

    /// <summary>The host's log of a failure Program reports itself: dropped, so the admin reads the list once, without a stack trace.</summary>
    public static bool IsReportedByProgram(LogEvent logEvent)
        => logEvent.Exception is { } exception
            && logEvent.Properties.TryGetValue("SourceContext", out var source)
            && source is ScalarValue { Value: HostCategory }
            && TryDescribe(exception, out _);
}
