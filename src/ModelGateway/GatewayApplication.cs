namespace ModelGateway;

/// <summary>Builds the gateway host; Program and the functional tests share it.</summary>
public static class GatewayApplication
{
    public static WebApplication Create(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        var app = builder.Build();
        app.MapGet("/healthz/live", () => "ok");
        return app;
    }
}
