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
        using var tcp = await RawWebSocket.OpenAsync(stack.Gateways[0], stack.Token("ghost", "room:*"));
        var stream = tcp.GetStream();
        Assert.Contains("101", await RawWebSocket.ReadTextAsync(stream, "\r\n\r\n", TimeSpan.FromSeconds(10)), StringComparison.Ordinal);
        await stream.WriteAsync(RawWebSocket.MaskedTextFrame($$"""{"type":"subscribe","id":"s","channel":"{{channel}}"}"""));
        Assert.Contains("\"ok\"", await RawWebSocket.ReadTextAsync(stream, "\"ok\"", TimeSpan.FromSeconds(10)), StringComparison.Ordinal);
        Assert.True(await db.SetContainsAsync(stack.Names.RouteKey(channel), "gw-0"));

        // No pong ever comes back: after the ping interval plus its timeout (1 s + 1 s here) the
        // gateway gives up on the connection and the node's route goes with it.
        var started = DateTime.UtcNow;
        await PipelineTests.WaitUntilAsync(async () => !await db.SetContainsAsync(stack.Names.RouteKey(channel), "gw-0"), TimeSpan.FromSeconds(15));
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(1), "closed before any ping could have gone unanswered");

        // Operators see why: the disconnect is counted as unresponsive, not as a normal close.
        await PipelineTests.WaitUntilAsync(
            async () => (await PrometheusText.ScrapeAsync(stack.Gateways[0].Http)).Sum("realtime_gateway_disconnects_total", ("reason", "unresponsive")) >= 1,
            TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task The_gateway_sends_WebSocket_pings_and_a_client_answering_them_by_hand_stays()
    {
        var stack = shared.Stack;
        var channel = $"room:{Guid.NewGuid():N}";
        using var redis = await ConnectionMultiplexer.ConnectAsync(stack.RedisConfiguration);
        var db = redis.GetDatabase();
        using var tcp = await RawWebSocket.OpenAsync(stack.Gateways[0], stack.Token("pong-by-hand", "room:*"));
        var stream = tcp.GetStream();
        Assert.Contains(" 101 ", await RawWebSocket.ReadHandshakeAsync(stream, TimeSpan.FromSeconds(10)), StringComparison.Ordinal);
        await stream.WriteAsync(RawWebSocket.MaskedTextFrame($$"""{"type":"subscribe","id":"s","channel":"{{channel}}"}"""));

        // Answer three pings (opcode 9) with pongs (opcode 10) echoing their payload. Each comes
        // after a second of silence, so this outlives interval + timeout (2 s) several times over.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var pings = 0;
        while (pings < 3)
        {
            var (opcode, payload) = await RawWebSocket.ReadFrameAsync(stream, deadline.Token);
            Assert.NotEqual(0x8, opcode);
            if (opcode == 0x9)
            {
                pings++;
                await stream.WriteAsync(RawWebSocket.MaskedFrame(0xA, payload), deadline.Token);
            }
        }

        // Still connected and still routed: the protocol-level ping gets its pong.
        Assert.True(await db.SetContainsAsync(stack.Names.RouteKey(channel), "gw-0"));
        await stream.WriteAsync(RawWebSocket.MaskedTextFrame("""{"type":"ping","id":"p"}"""), deadline.Token);
        while (true)
        {
            var (opcode, payload) = await RawWebSocket.ReadFrameAsync(stream, deadline.Token);
            Assert.NotEqual(0x8, opcode);
            if (opcode == 0x1 && System.Text.Encoding.UTF8.GetString(payload).Contains("\"pong\"", StringComparison.Ordinal))
            {
                break;
            }
        }
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

    /// <summary>A pipeline with one-second pings and a one-second pong timeout.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "heartbeat", gateways: 1, settings: new Dictionary<string, string?>
    {
        ["Gateway__KeepAliveInterval"] = "00:00:01",
        ["Gateway__KeepAliveTimeout"] = "00:00:01",
    });
}
