using System.Diagnostics;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Realtime.Contracts.V1;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>Transient events and what a gateway does about a client that does not keep up.</summary>
public sealed class BackpressureTests(BackpressureTests.Pipeline shared, ITestOutputHelper output) : IClassFixture<BackpressureTests.Pipeline>
{
    private LocalPipeline Stack => shared.Stack;

    [Fact]
    public async Task Transient_events_are_delivered_without_a_seq_and_never_replayed_and_typing_is_limited()
    {
        var channel = $"room:{Guid.NewGuid():N}";
        await using var subscriber = await Stack.ConnectAsync(1, "sub", "room:*");
        var ok = await subscriber.SubscribeAsync(channel);
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");

        await publisher.PublishAsync(channel, 1);
        var typing = await publisher.RequestAsync(new JsonObject { ["type"] = "publish", ["channel"] = channel, ["event"] = "typing.started", ["data"] = "alice", ["transient"] = true });
        Assert.Equal("ack", (string?)typing["type"]);
        var tooSoon = await publisher.RequestAsync(new JsonObject { ["type"] = "publish", ["channel"] = channel, ["event"] = "typing.started", ["data"] = "alice", ["transient"] = true });
        Assert.Equal("rate_limited", (string?)tooSoon["code"]);
        await publisher.PublishAsync(channel, 2);

        var events = await subscriber.TakeEventsAsync(3, TimeSpan.FromSeconds(10));
        Assert.Equal([1UL, null, 2UL], events.Select(e => (ulong?)e["seq"]));
        Assert.True((bool)events[1]["transient"]!);
        Assert.Equal("typing.started", (string?)events[1]["event"]);

        // A resume from before them replays the durable events only.
        await using var late = await Stack.ConnectAsync(0, "late", "room:*");
        await late.RequestAsync(new JsonObject { ["type"] = "subscribe", ["channel"] = channel, ["since"] = new JsonObject { ["epoch"] = (string?)ok["epoch"], ["seq"] = 0 } });
        var replayed = await late.TakeEventsAsync(2, TimeSpan.FromSeconds(10));
        Assert.Equal([1, 2], replayed.Select(e => (int)e["data"]!));
        Assert.False(late.TryTakeEvent(out _));
    }

    [Fact]
    public async Task A_client_that_stops_reading_is_told_to_resync_while_500_others_get_every_event()
    {
        // The stalled client must overflow the kernel buffers (64 KiB socket send buffer here, plus
        // its own 4 KiB receive buffer) and three quarters of its send queue (256 KiB here): 600
        // events of 1 KB do. The 500 readers get 300,000 frames.
        const int Readers = 500, Events = 600;
        var channel = $"room:{Guid.NewGuid():N}";
        var readers = new TestClient[Readers];
        await Parallel.ForAsync(0, Readers, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, _) =>
        {
            readers[i] = await Stack.ConnectAsync(0, $"reader{i}", "room:*");
            await readers[i].SubscribeAsync(channel);
        });

        // A raw client with a tiny receive buffer that subscribes and then never reads again.
        using var stalled = await RawWebSocket.OpenAsync(Stack.Gateways[0], Stack.Token("stalled", "room:*"), receiveBufferSize: 4096);
        var stream = stalled.GetStream();
        await stream.WriteAsync(RawWebSocket.MaskedTextFrame($$"""{"type":"subscribe","id":"s","channel":"{{channel}}"}"""));
        await RawWebSocket.ReadTextAsync(stream, "\"ok\"", TimeSpan.FromSeconds(10));

        var publisher = Stack.PublisherClient(1);
        var auth = Stack.ServiceAuth("room:*");
        var payload = ByteString.CopyFromUtf8($"\"{new string('x', 1_000)}\"");
        // 200 events/s: easy for a client that reads, 600 KB for one that does not.
        for (var start = 0; start < Events; start += 20)
        {
            var batch = new PublishBatchRequest();
            for (var i = start; i < start + 20; i++)
            {
                batch.Events.Add(new PublishRequest { Channel = channel, EventType = "big", Payload = payload });
            }

            await publisher.PublishBatchAsync(batch, auth, deadline: DateTime.UtcNow.AddSeconds(30));
            await Task.Delay(100, CancellationToken.None);
        }

        var stopwatch = Stopwatch.StartNew();
        await Parallel.ForEachAsync(readers, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (reader, _) =>
        {
            var got = await reader.TakeEventsAsync(Events, TimeSpan.FromSeconds(60));
            Assert.Equal(Enumerable.Range(1, Events).Select(i => (ulong)i), got.Select(e => (ulong)e["seq"]!));
            Assert.Empty(reader.Other);
        });

        output.WriteLine($"{Readers} readers got all {Events} events of 1 KB; the last one complete {stopwatch.ElapsedMilliseconds} ms after publishing ended");

        // The gateway stopped feeding the stalled client and told it so.
        await Stack.Gateways[0].Process.WaitForLineAsync(l => l.Contains("fell behind on", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        var rss = RawWebSocket.ResidentMegabytes(Stack.Gateways[0].Process.Pid);
        output.WriteLine($"gateway RSS {rss} MiB with {Readers + 1} connections");
        Assert.True(rss < 400, $"gateway RSS {rss} MiB");

        // When it reads again, it finds the resync with its own last position among what was queued.
        // The frame may arrive over more than one read: wait for its last field, not just its type.
        var seen = await RawWebSocket.ReadTextUntilAsync(
            stream,
            text => text.IndexOf("\"resync\"", StringComparison.Ordinal) is >= 0 and var at && text.IndexOf("\"seq\"", at, StringComparison.Ordinal) >= 0,
            TimeSpan.FromSeconds(20));
        Assert.Contains("\"reason\":\"slow_consumer\"", seen, StringComparison.Ordinal);
        foreach (var reader in readers)
        {
            await reader.DisposeAsync();
        }
    }

    [Fact]
    public async Task An_sse_stream_that_stops_reading_is_ended_after_its_queue_so_it_catches_up_from_its_cursor()
    {
        const int Events = 600;
        var channel = $"room:{Guid.NewGuid():N}";
        await using var reader = await Stack.ConnectAsync(0, "sse-peer", "room:*");
        await reader.SubscribeAsync(channel);

        // A raw HTTP client with a tiny receive buffer: reads the stream's start, then nothing.
        using var tcp = new System.Net.Sockets.TcpClient { ReceiveBufferSize = 4096 };
        await tcp.ConnectAsync(Stack.Gateways[0].Http.Host, Stack.Gateways[0].Http.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(
            $"GET /v1/sse?channels={channel}&access_token={Stack.TokenWith("sse-stalled", ["room:*"], TimeSpan.FromMinutes(5))} HTTP/1.1\r\nHost: {Stack.Gateways[0].Http.Authority}\r\nAccept: text/event-stream\r\n\r\n"));
        var opening = await RawWebSocket.ReadTextAsync(stream, "\"ok\"", TimeSpan.FromSeconds(10));
        var connectionId = System.Text.RegularExpressions.Regex.Match(opening, "\"connectionId\":\"([0-9a-f]+)\"").Groups[1].Value;
        Assert.NotEmpty(connectionId);

        var publisher = Stack.PublisherClient(1);
        var auth = Stack.ServiceAuth("room:*");
        var payload = ByteString.CopyFromUtf8($"\"{new string('x', 1_000)}\"");
        // Each batch goes out once the reader has the one before: the reader has the same 256 KiB
        // queue, and a burst of 600 KB at a client slowed by a busy machine would overflow it too
        // (it then gets a resync, correctly, but this test is about the stalled stream).
        var received = new List<ulong>(Events);
        for (var start = 0; start < Events; start += 20)
        {
            var batch = new PublishBatchRequest();
            for (var i = start; i < start + 20; i++)
            {
                batch.Events.Add(new PublishRequest { Channel = channel, EventType = "big", Payload = payload });
            }

            await publisher.PublishBatchAsync(batch, auth, deadline: DateTime.UtcNow.AddSeconds(30));
            received.AddRange((await reader.TakeEventsAsync(20, TimeSpan.FromSeconds(30))).Select(e => (ulong)e["seq"]!));
        }

        Assert.Equal(Enumerable.Range(1, Events).Select(i => (ulong)i), received);
        Assert.Empty(reader.Other);
        await Stack.Gateways[0].Process.WaitForLineAsync(l => l.Contains($"Connection {connectionId} fell behind", StringComparison.Ordinal), TimeSpan.FromSeconds(10));

        // Reading again, the client finds what was queued and then the end of the stream (a
        // chunked response's last chunk): EventSource would reconnect from the last id it saw.
        var rest = await RawWebSocket.ReadTextAsync(stream, "\r\n0\r\n\r\n", TimeSpan.FromSeconds(20));
        Assert.Contains("id: ", rest, StringComparison.Ordinal);
    }

    /// <summary>
    /// A pipeline with 256 KiB send queues (a quarter of the default) and 64 KiB socket send
    /// buffers, so a stalled client falls behind after a few hundred KB instead of several MB and
    /// 500 readers stay affordable on a small machine; and the default typing limit.
    /// </summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "backpressure", settings: new Dictionary<string, string?>
    {
        ["Gateway__TypingEventsPerSecond"] = "1",
        ["Gateway__SendQueueLimitBytes"] = "262144",
        ["Gateway__SocketSendBufferBytes"] = "65536",
    });
}
