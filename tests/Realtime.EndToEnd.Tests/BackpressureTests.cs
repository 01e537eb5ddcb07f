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
    public async Task A_client_that_stops_reading_is_told_to_resync_while_the_others_get_every_event()
    {
        // The stalled client must overflow its kernel buffers (up to 4 MiB here) and three
        // quarters of its 1 MiB send queue: 300 events of 24 KB.
        const int Readers = 20, Events = 300;
        var channel = $"room:{Guid.NewGuid():N}";
        var readers = new List<TestClient>();
        for (var i = 0; i < Readers; i++)
        {
            readers.Add(await Stack.ConnectAsync(0, $"reader{i}", "room:*"));
            await readers[^1].SubscribeAsync(channel);
        }

        // A raw client with a tiny receive buffer that subscribes and then never reads again.
        using var stalled = await RawWebSocket.OpenAsync(Stack.Gateways[0], Stack.Token("stalled", "room:*"), receiveBufferSize: 4096);
        var stream = stalled.GetStream();
        await stream.WriteAsync(RawWebSocket.MaskedTextFrame($$"""{"type":"subscribe","id":"s","channel":"{{channel}}"}"""));

        var publisher = Stack.PublisherClient(1);
        var auth = Stack.ServiceAuth("room:*");
        var payload = ByteString.CopyFromUtf8($"\"{new string('x', 24_000)}\"");
        // 100 events/s: easy for a client that reads, 7 MB for one that does not.
        for (var start = 0; start < Events; start += 10)
        {
            var batch = new PublishBatchRequest();
            for (var i = start; i < start + 10; i++)
            {
                batch.Events.Add(new PublishRequest { Channel = channel, EventType = "big", Payload = payload });
            }

            await publisher.PublishBatchAsync(batch, auth, deadline: DateTime.UtcNow.AddSeconds(30));
            await Task.Delay(100, CancellationToken.None);
        }

        var stopwatch = Stopwatch.StartNew();
        foreach (var reader in readers)
        {
            var got = await reader.TakeEventsAsync(Events, TimeSpan.FromSeconds(30));
            Assert.Equal(Enumerable.Range(1, Events).Select(i => (ulong)i), got.Select(e => (ulong)e["seq"]!));
            Assert.Empty(reader.Other);
        }

        output.WriteLine($"{Readers} readers got all {Events} events of 24 KB; last one complete {stopwatch.ElapsedMilliseconds} ms after publishing ended");

        // The gateway stopped feeding the stalled client and told it so.
        await Stack.Gateways[0].Process.WaitForLineAsync(l => l.Contains("fell behind on", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        var rss = RawWebSocket.ResidentMegabytes(Stack.Gateways[0].Process.Pid);
        output.WriteLine($"gateway RSS {rss} MiB");
        Assert.True(rss < 400, $"gateway RSS {rss} MiB");

        // When it reads again, it finds the resync with its own last position among what was queued.
        var seen = await RawWebSocket.ReadTextAsync(stream, "\"resync\"", TimeSpan.FromSeconds(20));
        Assert.Contains("\"reason\":\"slow_consumer\"", seen, StringComparison.Ordinal);
        foreach (var reader in readers)
        {
            await reader.DisposeAsync();
        }
    }

    /// <summary>A pipeline with the default 1 MiB send queues and the default typing limit.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "backpressure", settings: new Dictionary<string, string?>
    {
        ["Gateway__TypingEventsPerSecond"] = "1",
    });
}
