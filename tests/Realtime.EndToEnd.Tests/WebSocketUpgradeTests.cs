using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// The ways a WebSocket handshake is taken, over real sockets: straight off the accepted socket
/// (the direct socket transport, the default on a plain-http port), off a Kestrel connection
/// before its HTTP layer (the direct upgrade: over TLS, with the socket transport off, or for a
/// head that did not arrive whole), and through Kestrel's HTTP/1.1 upgrade (a handshake after
/// other requests on a kept-alive connection, or with the direct upgrade off). All answer and
/// carry the same protocol.
/// </summary>
public sealed class WebSocketUpgradeTests(SharedPipeline shared, WebSocketUpgradeTests.KestrelOnlyPipeline kestrelOnly, WebSocketUpgradeTests.KestrelTransportPipeline kestrelTransport)
    : IClassFixture<SharedPipeline>, IClassFixture<WebSocketUpgradeTests.KestrelOnlyPipeline>, IClassFixture<WebSocketUpgradeTests.KestrelTransportPipeline>
{
    /// <summary>What accepts the connection a direct handshake comes on.</summary>
    public enum Transport
    {
        /// <summary>The gateway's own (<c>DirectSocketTransport</c>), the default.</summary>
        Socket,

        /// <summary>Kestrel's socket transport, the handshake taken by the connection middleware.</summary>
        Kestrel,
    }

    // RFC 6455 1.3's sample key and the accept value it gives.
    private const string SampleKey = "dGhlIHNhbXBsZSBub25jZQ==";
    private const string SampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private LocalPipeline Stack => shared.Stack;

    private GatewayNode Gateway => Stack.Gateways[0];

    private LocalPipeline StackOf(Transport transport) => transport == Transport.Socket ? shared.Stack : kestrelTransport.Stack;

    private async Task<NetworkStream> ConnectAsync(TcpClient tcp, Transport transport)
    {
        var http = StackOf(transport).Gateways[0].Http;
        await tcp.ConnectAsync(http.Host, http.Port, TestContext.Current.CancellationToken);
        return tcp.GetStream();
    }

    private string Handshake(string? token, string? subprotocols = null) =>
        $"GET /ws HTTP/1.1\r\nHost: {Gateway.Http.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        $"Sec-WebSocket-Key: {SampleKey}\r\nSec-WebSocket-Version: 13\r\n" +
        (token is null ? string.Empty : $"Authorization: Bearer {token}\r\n") +
        (subprotocols is null ? string.Empty : $"Sec-WebSocket-Protocol: {subprotocols}\r\n") +
        "\r\n";

    [Theory]
    [InlineData(Transport.Socket)]
    [InlineData(Transport.Kestrel)]
    public async Task A_direct_handshake_gets_101_with_the_accept_key_and_subprotocol_and_the_websocket_answers_a_ping(Transport transport)
    {
        using var tcp = new TcpClient();
        var stream = await ConnectAsync(tcp, transport);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(Handshake(StackOf(transport).Token("direct", "room:*"), "realtime.v1.json")), TestContext.Current.CancellationToken);

        // Its first frame is the session's "connected"; a ping gets its pong after it.
        var answer = await ReadUpgradeAndConnectedAsync(stream);
        Assert.Contains("Sec-WebSocket-Protocol: realtime.v1.json\r\n", answer, StringComparison.Ordinal);
        using var cancellation = new CancellationTokenSource(Bound);
        await stream.WriteAsync(RawWebSocket.MaskedFrame(0x9, "are you there"u8.ToArray()), TestContext.Current.CancellationToken);
        var (opcode, payload) = await RawWebSocket.ReadFrameAsync(stream, cancellation.Token);
        Assert.Equal(0xA, opcode);
        Assert.Equal("are you there", Encoding.ASCII.GetString(payload));
    }

    [Theory]
    [InlineData(Transport.Socket)]
    [InlineData(Transport.Kestrel)]
    public async Task A_frame_sent_in_the_same_write_as_the_handshake_is_the_websockets_first(Transport transport)
    {
        using var tcp = new TcpClient();
        var stream = await ConnectAsync(tcp, transport);
        // Exactly the head is the handshake's: the ping right behind it belongs to the WebSocket.
        byte[] handshakeAndPing = [.. Encoding.ASCII.GetBytes(Handshake(StackOf(transport).Token("eager", "room:*"))), .. RawWebSocket.MaskedFrame(0x9, "right away"u8.ToArray())];
        await stream.WriteAsync(handshakeAndPing, TestContext.Current.CancellationToken);

        var answer = await RawWebSocket.ReadHandshakeAsync(stream, Bound);
        Assert.StartsWith("HTTP/1.1 101 Switching Protocols\r\n", answer, StringComparison.Ordinal);
        using var cancellation = new CancellationTokenSource(Bound);
        var frames = new List<(int Opcode, byte[] Payload)>
        {
            await RawWebSocket.ReadFrameAsync(stream, cancellation.Token),
            await RawWebSocket.ReadFrameAsync(stream, cancellation.Token),
        };
        Assert.Contains(frames, f => f.Opcode == 0x1 && (string?)JsonNode.Parse(f.Payload)!["type"] == "connected");
        Assert.Contains(frames, f => f.Opcode == 0xA && Encoding.ASCII.GetString(f.Payload) == "right away");
    }

    [Fact]
    public async Task A_handshake_whose_head_arrives_in_pieces_is_upgraded()
    {
        using var tcp = new TcpClient();
        var stream = await ConnectAsync(tcp, Transport.Socket);
        var handshake = Encoding.ASCII.GetBytes(Handshake(Stack.Token("pieces", "room:*")));
        // The request line, then the headers: a head the socket transport did not see whole goes
        // on to Kestrel, where the connection middleware waits for the rest.
        var split = Array.IndexOf(handshake, (byte)'\n') + 1;
        await stream.WriteAsync(handshake.AsMemory(0, split), TestContext.Current.CancellationToken);
        await stream.WriteAsync(handshake.AsMemory(split), TestContext.Current.CancellationToken);

        await ReadUpgradeAndConnectedAsync(stream);
    }

    [Theory]
    [InlineData(Transport.Socket)]
    [InlineData(Transport.Kestrel)]
    public async Task A_refused_direct_handshake_is_a_whole_http_response_and_then_the_connection_ends(Transport transport)
    {
        using var tcp = new TcpClient();
        var stream = await ConnectAsync(tcp, transport);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(Handshake("not-a-token")), TestContext.Current.CancellationToken);

        // Read to the end: the connection closes after the response.
        var answer = await RawWebSocket.ReadTextUntilAsync(stream, _ => false, Bound);
        Assert.StartsWith("HTTP/1.1 401 Unauthorized\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("Connection: close\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("WWW-Authenticate: Bearer error=\"invalid_token\"", answer, StringComparison.Ordinal);
        var split = answer.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var body = answer[(split + 4)..];
        var length = answer[..split].Split("\r\n").Single(h => h.StartsWith("Content-Length: ", StringComparison.Ordinal))["Content-Length: ".Length..];
        Assert.Equal(int.Parse(length, System.Globalization.CultureInfo.InvariantCulture), Encoding.UTF8.GetByteCount(body));
        Assert.Equal("unauthorized", (string?)JsonNode.Parse(body)!["error"]);
        Assert.DoesNotContain("not-a-token", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_handshake_after_another_request_on_a_kept_alive_connection_is_upgraded_by_kestrel()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(Gateway.Http.Host, Gateway.Http.Port, TestContext.Current.CancellationToken);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET /healthz HTTP/1.1\r\nHost: {Gateway.Http.Authority}\r\n\r\n"), TestContext.Current.CancellationToken);
        var health = await RawWebSocket.ReadTextAsync(stream, "ok", Bound);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", health, StringComparison.Ordinal);

        await stream.WriteAsync(Encoding.ASCII.GetBytes(Handshake(Stack.Token("kept-alive", "room:*"))), TestContext.Current.CancellationToken);
        await ReadUpgradeAndConnectedAsync(stream);
    }

    [Fact]
    public async Task With_the_direct_upgrade_off_websockets_still_subscribe_publish_and_receive()
    {
        var stack = kestrelOnly.Stack;
        var channel = $"room:{Guid.NewGuid():N}";
        await using var listener = await stack.ConnectAsync(0, "kestrel-listener", "room:*");
        await using var publisher = await stack.ConnectAsync(0, "kestrel-publisher", "room:*");
        Assert.Equal("ok", (string?)(await listener.SubscribeAsync(channel))["type"]);

        var ack = await publisher.PublishAsync(channel, new JsonObject { ["text"] = "through kestrel" });
        var received = await listener.NextEventAsync();
        Assert.Equal((string?)ack["eventId"], (string?)received["eventId"]);
        Assert.Equal("through kestrel", (string?)received["data"]!["text"]);
    }

    /// <summary>Reads a <c>101</c> carrying the sample key's accept value, then the session's "connected" frame; returns the <c>101</c>.</summary>
    private static async Task<string> ReadUpgradeAndConnectedAsync(NetworkStream stream)
    {
        var answer = await RawWebSocket.ReadHandshakeAsync(stream, Bound);
        Assert.StartsWith("HTTP/1.1 101 Switching Protocols\r\n", answer, StringComparison.Ordinal);
        Assert.Contains($"Sec-WebSocket-Accept: {SampleAccept}\r\n", answer, StringComparison.Ordinal);
        using var cancellation = new CancellationTokenSource(Bound);
        var (opcode, payload) = await RawWebSocket.ReadFrameAsync(stream, cancellation.Token);
        Assert.Equal(0x1, opcode);
        Assert.Equal("connected", (string?)JsonNode.Parse(payload)!["type"]);
        return answer;
    }

    /// <summary>One gateway whose HTTP port is Kestrel's socket transport: direct handshakes are taken by the connection middleware.</summary>
    public sealed class KestrelTransportPipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "kestrel-transport", gateways: 1, settings: new Dictionary<string, string?>
    {
        ["Gateway__DirectSocketTransport"] = "false",
    });

    /// <summary>One gateway that takes every WebSocket handshake through Kestrel's upgrade.</summary>
    public sealed class KestrelOnlyPipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "kestrel-upgrade", gateways: 1, settings: new Dictionary<string, string?>
    {
        ["Gateway__DirectWebSocketUpgrade"] = "false",
    });
}
