using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelGateway.Providers.Media;

namespace ModelGateway.Tests.Providers.Media;

/// <summary>
/// An https image server on 127.0.0.1 with its own self-signed certificate, standing in for an image
/// host on the internet. It counts the TCP connections it accepts and the requests it serves, so a test
/// can tell whether the gateway reached it at all.
/// </summary>
internal sealed class TlsImageServer : IAsyncDisposable
{
    /// <summary>A real 1×1 PNG.</summary>
    public static readonly byte[] Png = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==");

    private readonly WebApplication _app;
    private int _connections;
    private int _requests;

    private TlsImageServer(WebApplication app, X509Certificate2 certificate)
    {
        _app = app;
        Certificate = certificate;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Port = new Uri(address).Port;
    }

    public X509Certificate2 Certificate { get; }

    public int Port { get; }

    public int Connections => Volatile.Read(ref _connections);

    public int Requests => Volatile.Read(ref _requests);

    /// <summary>https://127.0.0.1:port + path.</summary>
    public string Url(string path) => $"https://127.0.0.1:{Port}{path}";

    /// <summary>The gateway's fetcher trusts this server's certificate and nothing else it could not trust already.</summary>
    public MediaFetchTestHooks Hooks(Func<string, IPAddress[]?>? resolve = null) => new()
    {
        TrustServerCertificateForTestsOnly = (_, certificate, _, errors) =>
            errors == System.Net.Security.SslPolicyErrors.None
            || (certificate is not null && certificate.GetCertHashString() == Certificate.GetCertHashString()),
        ResolveHostForTestsOnly = async (host, cancellationToken) =>
            resolve?.Invoke(host) ?? await Dns.GetHostAddressesAsync(host, cancellationToken),
    };

    public static async Task<TlsImageServer> StartAsync()
    {
        var certificate = CreateCertificate();
        TlsImageServer? server = null;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Use(next => async connection =>
            {
                Interlocked.Increment(ref server!._connections);
                await next(connection);
            });
            listen.UseHttps(new HttpsConnectionAdapterOptions { ServerCertificate = certificate });
        }));
        var app = builder.Build();
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref server!._requests);
            await next(context);
        });
        app.MapGet("/cat.png", () => Results.Bytes(Png, "image/png"));
        app.MapGet("/cat-as-jpeg", () => Results.Bytes(Png, "image/jpeg"));
        app.MapGet("/page.html", () => Results.Text("<html><body>not an image</body></html>", "text/html"));
        app.MapGet("/mislabelled.png", () => Results.Text("<html><body>not an image</body></html>", "image/png"));
        app.MapGet("/icon.svg", () => Results.Text("<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>", "image/svg+xml"));
        app.MapGet("/missing.png", () => Results.NotFound());
        app.MapGet("/redirect", (string to) => Results.Redirect(to));
        app.MapGet("/big.png", async context =>
        {
            // Declares its size up front: refused before the body is read.
            var body = new byte[200_000];
            Png.CopyTo(body, 0);
            context.Response.ContentType = "image/png";
            context.Response.ContentLength = body.Length;
            await context.Response.Body.WriteAsync(body, context.RequestAborted);
        });
        app.MapGet("/endless.png", async context =>
        {
            // No length, and more than any limit: only counting the bytes read can stop it.
            context.Response.ContentType = "image/png";
            await context.Response.Body.WriteAsync(Png, context.RequestAborted);
            var chunk = new byte[16 * 1024];
            for (var i = 0; i < 64 && !context.RequestAborted.IsCancellationRequested; i++)
            {
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
            }
        });
        app.MapGet("/slow.png", async context =>
        {
            // Starts, then stalls until the client gives up.
            context.Response.ContentType = "image/png";
            await context.Response.Body.WriteAsync(Png.AsMemory(0, 8), context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(TimeSpan.FromMinutes(2), context.RequestAborted);
        });
        await app.StartAsync();
        server = new TlsImageServer(app, certificate);
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Certificate.Dispose();
    }

    private static X509Certificate2 CreateCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=media-fetch-test", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("images.test");
        names.AddDnsName("*.images.test");
        request.CertificateExtensions.Add(names.Build());
        var now = DateTimeOffset.UtcNow;
        using var created = request.CreateSelfSigned(now.AddMinutes(-5), now.AddHours(1));

        // A certificate with an exported and re-imported key works with every TLS back end.
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pkcs12), null);
    }
}

/// <summary>
/// A TCP listener on one port of 127.0.0.1, 127.0.0.2 and [::1] that only counts the connections it is
/// offered: every URL a test hopes the gateway will refuse points here, so 0 means nothing was dialled.
/// </summary>
internal sealed class ConnectionCanary : IAsyncDisposable
{
    private readonly List<TcpListener> _listeners = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private int _connections;

    private ConnectionCanary()
    {
    }

    public int Port { get; private set; }

    public int Connections => Volatile.Read(ref _connections);

    public static ConnectionCanary Start()
    {
        var canary = new ConnectionCanary();
        for (var attempt = 0; ; attempt++)
        {
            var first = new TcpListener(IPAddress.Loopback, 0);
            first.Start();
            var port = ((IPEndPoint)first.LocalEndpoint).Port;
            try
            {
                var second = new TcpListener(IPAddress.Parse("127.0.0.2"), port);
                second.Start();
                var third = new TcpListener(IPAddress.IPv6Loopback, port);
                third.Start();
                canary._listeners.AddRange([first, second, third]);
                canary.Port = port;
                break;
            }
            catch (SocketException) when (attempt < 10)
            {
                // The same port was taken on another loopback address: pick another.
                first.Stop();
                foreach (var listener in canary._listeners)
                {
                    listener.Stop();
                }

                canary._listeners.Clear();
            }
        }

        foreach (var listener in canary._listeners)
        {
            canary._loops.Add(canary.AcceptAsync(listener));
        }

        return canary;
    }

    private async Task AcceptAsync(TcpListener listener)
    {
        try
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync(_stop.Token);
                Interlocked.Increment(ref _connections);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var listener in _listeners)
        {
            listener.Stop();
        }

        await Task.WhenAll(_loops);
        _stop.Dispose();
    }
}

/// <summary>Chat request bodies with images, as an OpenAI client sends them.</summary>
internal static class ImageRequests
{
    public static string Chat(string model, params string[] imageUrls)
    {
        var content = new List<object> { new { type = "text", text = "What is in this picture?" } };
        content.AddRange(imageUrls.Select(url => new { type = "image_url", image_url = new { url } }));
        return JsonSerializer.Serialize(new { model, messages = new[] { new { role = "user", content } } });
    }

    public static string DataUrl => "data:image/png;base64," + Convert.ToBase64String(TlsImageServer.Png);
}
