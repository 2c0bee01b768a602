using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ModelGateway.FakeUpstream;
using ModelGateway.Forwarding;
using ModelGateway.Protocols.OpenAI;
using ModelGateway.Providers;
using ModelGateway.Wire;
using Yarp.ReverseProxy.Forwarder;

namespace ModelGateway.Tests.Forwarding;

/// <summary>How one attempt behaves on the wire, below failover.</summary>
public sealed class UpstreamForwarderTests : IAsyncLifetime
{
    private const string Body = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";

    private FakeUpstreamServer _upstream = null!;
    private ServiceProvider _services = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeUpstreamServer.StartAsync();
        _services = new ServiceCollection().AddLogging().AddHttpForwarder().BuildServiceProvider();
    }

    public async Task DisposeAsync()
    {
        await _services.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task A_request_the_connection_dropped_unprocessed_is_sent_again_instead_of_failing_the_attempt()
    {
        // What an HTTP/2 front's GOAWAY does: the handler wrote the request on a connection the server
        // closed without processing it, and asks for the body again to re-send it on a new connection.
        using var invoker = new HttpMessageInvoker(new ReadsTheBodyTwiceOnce { InnerHandler = new SocketsHttpHandler() });
        var response = await SendAsync(invoker);

        Assert.Null(response.FailureDetail);
        Assert.Equal(200, response.StatusCode);
        await using var body = await response.GetBodyAsync(CancellationToken.None);
        using var reader = new StreamReader(body);
        Assert.Contains("\"chat.completion\"", await reader.ReadToEndAsync(), StringComparison.Ordinal);
        Assert.Equal(1, _upstream.RequestCount);
    }

    [Fact]
    public async Task Any_other_transport_failure_is_reported_once_for_failover_to_decide()
    {
        var failing = new FailsEveryRequest { InnerHandler = new SocketsHttpHandler() };
        using var invoker = new HttpMessageInvoker(failing);

        var response = await SendAsync(invoker);

        Assert.Equal(TransportFailure.Protocol, response.Failure);
        Assert.Equal("The upstream reset the stream.", response.FailureDetail);
        Assert.Equal(1, failing.Calls);
        Assert.Equal(0, _upstream.RequestCount);
    }

    private async Task<UpstreamResponse> SendAsync(HttpMessageInvoker invoker, Uri? destination = null)
    {
        destination ??= new Uri(_upstream.BaseUri, "v1/chat/completions");
        var bytes = Encoding.UTF8.GetBytes(Body);
        var request = new GatewayRequest(new DefaultHttpContext(), OpenAIChatProtocol.Instance, Operation.ChatCompletions, "req_test", 0);
        request.SetBody(bytes, bytes.Length);
        var forwarder = new UpstreamForwarder(_services.GetRequiredService<IHttpForwarder>());
        return await forwarder.SendAsync(
            request, invoker, destination.GetLeftPart(UriPartial.Authority), destination, new SplicedBody(bytes, [], 0), [], signer: null, CancellationToken.None);
    }

    private sealed class FailsEveryRequest : DelegatingHandler
    {
        public int Calls;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            throw new HttpRequestException(HttpRequestError.InvalidResponse, "The upstream reset the stream.");
        }
    }

    /// <summary>On its first request, consumes the content as a write to a dead connection would, then sends it for real.</summary>
    private sealed class ReadsTheBodyTwiceOnce : DelegatingHandler
    {
        private int _calls;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _calls) == 1 && request.Content is not null)
            {
                await request.Content.CopyToAsync(Stream.Null, cancellationToken);
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }
}
