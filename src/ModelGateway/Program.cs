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
