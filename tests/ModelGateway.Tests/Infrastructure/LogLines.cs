namespace ModelGateway.Tests.Infrastructure;

/// <summary>Captured log lines as plain text: the host's Serilog pipeline renders string values in quotes.</summary>
internal static class LogLines
{
    public static string Plain(string line) => line.Replace("\"", string.Empty, StringComparison.Ordinal);
}
