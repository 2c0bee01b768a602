using ModelGateway;
using ModelGateway.Configuration;

try
{
    var app = GatewayApplication.Create(args);
    await app.RunAsync();
    return 0;
}
catch (ConfigurationLoadException ex)
{
    // Admins fix the file from this message: print it plainly, not only inside a JSON log line.
    await Console.Error.WriteLineAsync(ex.Message);
    return 1;
}
catch (Microsoft.Extensions.Options.OptionsValidationException ex)
{
    await Console.Error.WriteLineAsync("Invalid gateway settings: " + string.Join("; ", ex.Failures));
    return 1;
}
catch (InvalidOperationException ex) when (ex.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal))
{
    // A setting of the wrong type (e.g. "5s" where a TimeSpan like 00:00:05 is expected).
    await Console.Error.WriteLineAsync("Invalid gateway settings: " + ex.Message + (ex.InnerException is null ? string.Empty : " " + ex.InnerException.Message));
    return 1;
}
