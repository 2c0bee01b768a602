using System.Net;
using Yarp.ReverseProxy.Forwarder;

namespace ModelGateway.Bench.YarpFloor;

/// <summary>A bare YARP direct-forwarding proxy: every request goes, unchanged, to one upstream.</summary>
internal static class FloorApp
{
    public static WebApplication Create(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(args);

        // No logging provider at all: the floor must not pay for anything a gateway could switch off.
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        builder.Services.AddHttpForwarder();

        var upstream = builder.Configuration["upstream"];
        if (string.IsNullOrEmpty(upstream) || !Uri.TryCreate(upstream, UriKind.Absolute, out _))
        {
            throw new ArgumentException("--upstream http://host:port is required");
        }

        var app = builder.Build();
        var forwarder = app.Services.GetRequiredService<IHttpForwarder>();

        // One pooled handler for the process, as YARP's direct-forwarding sample does: no proxy, no
        // redirects, no decompression, no cookies, no activity propagation (the gateway's tracing cost
        // is part of what the comparison measures).
        var invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ActivityHeadersPropagator = null,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            MaxConnectionsPerServer = int.MaxValue,
        });
        app.Lifetime.ApplicationStopped.Register(invoker.Dispose);

        var requestConfig = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromSeconds(100) };
        var transformer = HttpTransformer.Empty;
        app.Map("/{**path}", async context =>
        {
            var error = await forwarder.SendAsync(context, upstream, invoker, requestConfig, transformer).ConfigureAwait(false);
            if (error != ForwarderError.None && !context.Response.HasStarted)
            {
                context.Response.StatusCode = StatusCodes.Status502BadGateway;
            }
        });
        return app;
    }
}
