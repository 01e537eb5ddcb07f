using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Realtime.Contracts.V1;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// TLS served by the gateway itself (<c>Gateway:Tls</c>): a gateway whose endpoints are both
/// <c>https://</c>, with a self-signed certificate generated here, serves <c>wss://</c> and gRPC
/// over TLS (HTTP/2 by ALPN) to clients that pin the certificate, nothing in plaintext, and
/// nothing to clients that do not trust it. A https endpoint without a usable certificate stops
/// the gateway at start with an error naming the setting.
/// </summary>
public sealed class TlsTests(TlsTests.Pipeline shared) : IClassFixture<TlsTests.Pipeline>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private LocalPipeline Stack => shared.Stack;

    private GatewayNode Gateway => Stack.Gateways[0];

    [Fact]
    public async Task A_wss_client_pinning_the_certificate_subscribes_publishes_and_receives_an_event()
    {
        Assert.Equal("wss", Gateway.WebSocket.Scheme);
        var channel = NewChannel();
        var presented = new List<(bool Pinned, SslPolicyErrors Errors)>();
        await using var client = await TestClient.ConnectAsync(Gateway.WebSocket, Stack.Token("tls-reader", "room:*"), configure: options =>
            options.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                var pinned = shared.Certificate.IsPresentedBy(certificate);
                lock (presented)
                {
                    presented.Add((pinned, errors));
                }

                return pinned;
            });

        // The gateway presented the generated certificate, which no trust store vouches for:
        // the pin alone let the client in.
        var (pinned, errors) = Assert.Single(presented);
        Assert.True(pinned);
        Assert.NotEqual(SslPolicyErrors.None, errors);

        Assert.Equal("ok", (string?)(await client.SubscribeAsync(channel))["type"]);
        var ack = await client.PublishAsync(channel, new JsonObject { ["n"] = 1 });
        Assert.Equal("ack", (string?)ack["type"]);
        var received = await client.NextEventAsync();
        Assert.Equal(channel, (string?)received["channel"]);
        Assert.Equal((string?)ack["eventId"], (string?)received["eventId"]);
        Assert.Equal(1, (int?)received["data"]!["n"]);
    }

    [Fact]
    public async Task A_grpc_publisher_over_tls_reaches_a_wss_subscriber()
    {
        Assert.Equal(Uri.UriSchemeHttps, Gateway.Grpc.Scheme);
        var channel = NewChannel();
        await using var subscriber = await TestClient.ConnectAsync(Gateway.WebSocket, Stack.Token("tls-sub", "room:*"), configure: options =>
            options.RemoteCertificateValidationCallback = shared.Certificate.Pin);
        await subscriber.SubscribeAsync(channel);

        using var grpc = GrpcChannel.ForAddress(Gateway.Grpc, new GrpcChannelOptions { HttpHandler = shared.Certificate.PinnedHandler() });
        var publisher = new Publisher.PublisherClient(grpc);
        var response = await publisher.PublishAsync(
            new PublishRequest { Channel = channel, EventType = "tls.checked", Payload = ByteString.CopyFromUtf8("""{"over":"tls"}""") },
            Stack.ServiceAuth("room:*"),
            deadline: DateTime.UtcNow.AddSeconds(15));
        Assert.False(string.IsNullOrEmpty(response.EventId));

        var received = await subscriber.NextEventAsync();
        Assert.Equal(response.EventId, (string?)received["eventId"]);
        Assert.Equal("tls.checked", (string?)received["event"]);
        Assert.Equal("tls", (string?)received["data"]!["over"]);
    }

    [Fact]
    public async Task Alpn_selects_h2_on_the_grpc_port_and_http_1_1_on_the_websocket_port_with_tls_1_2_or_later()
    {
        var offered = new List<SslApplicationProtocol> { SslApplicationProtocol.Http2, SslApplicationProtocol.Http11 };
        using (var grpc = await HandshakeAsync(Gateway.Grpc, offered))
        {
            Assert.Equal(SslApplicationProtocol.Http2, grpc.NegotiatedApplicationProtocol);
            Assert.True(grpc.SslProtocol is SslProtocols.Tls12 or SslProtocols.Tls13, $"negotiated {grpc.SslProtocol}");
        }

        using (var http = await HandshakeAsync(Gateway.Http, offered))
        {
            Assert.Equal(SslApplicationProtocol.Http11, http.NegotiatedApplicationProtocol);
            Assert.True(http.SslProtocol is SslProtocols.Tls12 or SslProtocols.Tls13, $"negotiated {http.SslProtocol}");
        }

        // A client that can only speak HTTP/1.1 gets no gRPC port: the handshake fails, as h2 is all it offers.
        await Assert.ThrowsAnyAsync<Exception>(() => HandshakeAsync(Gateway.Grpc, [SslApplicationProtocol.Http11]));
    }

    [Fact]
    public async Task Nothing_is_served_in_plaintext_on_the_tls_ports()
    {
        var plainHttp = new UriBuilder(Gateway.Http) { Scheme = Uri.UriSchemeHttp, Path = "/healthz" }.Uri;
        using (var http = new HttpClient { Timeout = Wait })
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(plainHttp));
        }

        var plainWebSocket = new Uri($"ws://{Gateway.Http.Authority}/ws");
        using (var socket = new ClientWebSocket())
        {
            socket.Options.SetRequestHeader("Authorization", $"Bearer {Stack.Token("plain", "room:*")}");
            using var timeout = new CancellationTokenSource(Wait);
            await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(plainWebSocket, timeout.Token));
            Assert.NotEqual(WebSocketState.Open, socket.State);
        }

        // gRPC in cleartext (h2c with prior knowledge) to the gRPC port.
        using var h2c = GrpcChannel.ForAddress(new UriBuilder(Gateway.Grpc) { Scheme = Uri.UriSchemeHttp }.Uri);
        var error = await Assert.ThrowsAsync<RpcException>(async () => await new Publisher.PublisherClient(h2c).PublishAsync(
            new PublishRequest { Channel = NewChannel(), EventType = "plain", Payload = ByteString.CopyFromUtf8("{}") },
            Stack.ServiceAuth("room:*"),
            deadline: DateTime.UtcNow.Add(Wait)));
        Assert.Contains(error.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
    }

    [Fact]
    public async Task A_client_that_does_not_trust_the_certificate_fails_the_handshake()
    {
        using (var socket = new ClientWebSocket())
        {
            socket.Options.SetRequestHeader("Authorization", $"Bearer {Stack.Token("doubter", "room:*")}");
            using var timeout = new CancellationTokenSource(Wait);
            var error = await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(Gateway.WebSocket, timeout.Token));
            AssertAuthenticationFailure(error);
        }

        using (var http = new HttpClient { Timeout = Wait })
        {
            var error = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(new Uri(Gateway.Http, "/healthz")));
            Assert.Equal(HttpRequestError.SecureConnectionError, error.HttpRequestError);
            AssertAuthenticationFailure(error);
        }

        using var grpc = GrpcChannel.ForAddress(Gateway.Grpc);
        var rpcError = await Assert.ThrowsAsync<RpcException>(async () => await new Publisher.PublisherClient(grpc).PublishAsync(
            new PublishRequest { Channel = NewChannel(), EventType = "doubt", Payload = ByteString.CopyFromUtf8("{}") },
            Stack.ServiceAuth("room:*"),
            deadline: DateTime.UtcNow.Add(Wait)));
        // Grpc.Net.Client reports a failed TLS handshake as Internal ("Error starting gRPC call").
        Assert.Contains(rpcError.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
        AssertAuthenticationFailure(rpcError.Status.DebugException);
    }

    [Fact]
    public async Task An_https_endpoint_without_a_usable_certificate_stops_the_gateway_at_start_naming_the_setting()
    {
        using var other = TestCertificate.Create();
        var cases = new (string Name, Dictionary<string, string?> Tls, string Expected)[]
        {
            ("none", [], "Gateway:Tls:CertificatePath"),
            ("missing file", new() { ["Gateway__Tls__CertificatePath"] = Path.Combine(other.Directory, "absent.crt") }, "Gateway:Tls:CertificatePath: no such file"),
            ("key of another certificate", new() { ["Gateway__Tls__CertificatePath"] = shared.Certificate.CertificatePath, ["Gateway__Tls__KeyPath"] = other.KeyPath }, "cannot load the certificate"),
            ("pem and pfx", new() { ["Gateway__Tls__CertificatePath"] = shared.Certificate.CertificatePath, ["Gateway__Tls__PfxPath"] = other.CertificatePath }, "are both set"),
        };

        foreach (var (name, tls, expected) in cases)
        {
            var environment = new Dictionary<string, string?>
            {
                ["Gateway__NodeId"] = "gw-tls-bad",
                ["Gateway__HttpEndpoint"] = $"https://127.0.0.1:{FreePort.Next()}",
                ["Gateway__GrpcEndpoint"] = $"http://127.0.0.1:{FreePort.Next()}",
                ["Gateway__Tls__CertificatePath"] = null,
                ["Gateway__Tls__KeyPath"] = null,
                ["Gateway__Tls__PfxPath"] = null,
                ["Pipeline__Namespace"] = $"{Stack.Names.Namespace}-bad",
                ["Kafka__BootstrapServers"] = Stack.KafkaBootstrap,
                ["Redis__Configuration"] = Stack.RedisConfiguration,
                ["Auth__SigningKey"] = Stack.SigningKey,
                ["Auth__Issuer"] = LocalPipeline.Issuer,
                ["Auth__Audience"] = LocalPipeline.Audience,
            };
            foreach (var (key, value) in tls)
            {
                environment[key] = value;
            }

            await using var gateway = ManagedProcess.Start(ProcessSpec.DotnetDll(
                $"{Stack.Names.Namespace}-bad-tls", RepoPaths.ProjectOutput("src/Gateway", "Realtime.Gateway.dll"), environment));
            var code = await gateway.WaitForExitAsync(TimeSpan.FromSeconds(30));
            var output = string.Join('\n', gateway.RecentLines);
            Assert.True(code != 0, $"{name}: exited with 0");
            Assert.True(output.Contains(expected, StringComparison.Ordinal), $"{name}: no '{expected}' in:\n{output}");
            Assert.DoesNotContain(" ready ", output, StringComparison.Ordinal);
        }
    }

    private static string NewChannel() => $"room:{Guid.NewGuid():N}";

    private async Task<SslStream> HandshakeAsync(Uri endpoint, List<SslApplicationProtocol> protocols)
    {
        using var timeout = new CancellationTokenSource(Wait);
        var tcp = new TcpClient();
        try
        {
            await tcp.ConnectAsync(IPAddress.Parse(endpoint.Host), endpoint.Port, timeout.Token);
            var ssl = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
            try
            {
                await ssl.AuthenticateAsClientAsync(
                    new SslClientAuthenticationOptions
                    {
                        TargetHost = endpoint.Host,
                        ApplicationProtocols = protocols,
                        RemoteCertificateValidationCallback = shared.Certificate.Pin,
                    },
                    timeout.Token);
                return ssl;
            }
            catch
            {
                await ssl.DisposeAsync();
                throw;
            }
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    private static void AssertAuthenticationFailure(Exception? error)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            if (e is AuthenticationException)
            {
                return;
            }
        }

        Assert.Fail($"no AuthenticationException in {error}");
    }

    /// <summary>One gateway whose endpoints are both https, serving a certificate generated for the class.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : IAsyncLifetime
    {
        private LocalPipeline? _stack;

        public TestCertificate Certificate { get; } = TestCertificate.Create();

        public LocalPipeline Stack => _stack ?? throw new InvalidOperationException("Pipeline not started.");

        public async ValueTask InitializeAsync() =>
            _stack = await LocalPipeline.StartAsync(infrastructure, "tls", gateways: 1, tls: Certificate);

        public async ValueTask DisposeAsync()
        {
            if (_stack is not null)
            {
                await _stack.DisposeAsync();
            }

            Certificate.Dispose();
        }
    }
}
