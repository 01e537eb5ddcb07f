using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Realtime.Testing;
using StackExchange.Redis;

namespace Realtime.EndToEnd.Tests;

/// <summary>Dead connections (a peer that vanished without closing) are found by pings and released.</summary>
public sealed class HeartbeatTests(HeartbeatTests.Pipeline shared) : IClassFixture<HeartbeatTests.Pipeline>
{
    [Fact]
    public async Task A_client_that_stops_answering_pings_is_closed_and_its_route_released()
    {
        var stack = shared.Stack;
        var channel = $"room:{Guid.NewGuid():N}";
        using var redis = await ConnectionMultiplexer.ConnectAsync(stack.RedisConfiguration);
        var db = redis.GetDatabase();

        // A bare TCP client: handshake and subscribe, then silence, like a phone that lost its network.
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(stack.Gateways[0].Http.Host, stack.Gateways[0].Http.Port);
        var stream = tcp.GetStream();
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var handshake = $"GET /ws HTTP/1.1\r\nHost: {stack.Gateways[0].Http.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {stack.Token("ghost", "room:*")}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(handshake));
        await ReadUntilAsync(stream, "\r\n\r\n", expectContains: "101");
        await stream.WriteAsync(MaskedTextFrame($$"""{"type":"subscribe","id":"s","channel":"{{channel}}"}"""));
        await ReadUntilAsync(stream, "\"ok\"", expectContains: "\"ok\"");
        Assert.True(await db.SetContainsAsync(stack.Names.RouteKey(channel), "gw-0"));

        // No pong ever comes back: after the ping interval plus its timeout (1 s + 1 s here) the
        // gateway gives up on the connection and the node's route goes with it.
        var started = DateTime.UtcNow;
        await PipelineTests.WaitUntilAsync(async () => !await db.SetContainsAsync(stack.Names.RouteKey(channel), "gw-0"), TimeSpan.FromSeconds(15));
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(1), "closed before any ping could have gone unanswered");
    }

    [Fact]
    public async Task A_client_that_answers_pings_stays_connected_across_many_intervals()
    {
        var stack = shared.Stack;
        await using var client = await stack.ConnectAsync(0, "alive", "room:*");
        var channel = $"room:{Guid.NewGuid():N}";
        await client.SubscribeAsync(channel);
        // Five ping intervals of silence from the application: ClientWebSocket answers pings itself.
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Equal("pong", (string?)(await client.PingAsync())["type"]);
        Assert.Null(client.CloseStatus);
    }

    private static byte[] MaskedTextFrame(string text)
    {
        var payload = Encoding.UTF8.GetBytes(text);
        var mask = RandomNumberGenerator.GetBytes(4);
        var frame = new List<byte> { 0x81 };
        if (payload.Length < 126)
        {
            frame.Add((byte)(0x80 | payload.Length));
        }
        else
        {
            frame.Add(0x80 | 126);
            frame.Add((byte)(payload.Length >> 8));
            frame.Add((byte)payload.Length);
        }

        frame.AddRange(mask);
        frame.AddRange(payload.Select((b, i) => (byte)(b ^ mask[i % 4])));
        return [.. frame];
    }

    private static async Task ReadUntilAsync(NetworkStream stream, string marker, string expectContains)
    {
        var seen = new StringBuilder();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!seen.ToString().Contains(marker, StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, timeout.Token);
            Assert.True(read > 0, $"connection closed; got: {seen}");
            seen.Append(Encoding.Latin1.GetString(buffer, 0, read));
        }

        Assert.Contains(expectContains, seen.ToString(), StringComparison.Ordinal);
    }

    /// <summary>A pipeline with one-second pings and a one-second pong timeout.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : IAsyncLifetime
    {
        private LocalPipeline? _stack;

        public LocalPipeline Stack => _stack ?? throw new InvalidOperationException("Pipeline not started.");

        public async ValueTask InitializeAsync() =>
            _stack = await LocalPipeline.StartAsync(infrastructure, "heartbeat", gateways: 1, settings: new Dictionary<string, string?>
            {
                ["Gateway__KeepAliveInterval"] = "00:00:01",
                ["Gateway__KeepAliveTimeout"] = "00:00:01",
            });

        public async ValueTask DisposeAsync()
        {
            if (_stack is not null)
            {
                await _stack.DisposeAsync();
            }
        }
    }
}
