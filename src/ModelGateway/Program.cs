using ModelGateway;

try
{
    var app = GatewayApplication.Create(args);
    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (StartupFailure.TryDescribe(ex, out var message))
{
    // Admins fix the file or the setting from this message: print it plainly, on its own, and fail.
    await Console.Error.WriteLineAsync(message);
    return 1;
}
