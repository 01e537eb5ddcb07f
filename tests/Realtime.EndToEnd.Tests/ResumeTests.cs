using System.Text.Json.Nodes;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>Positions and resume: per-channel seq, the position in <c>ok</c>, gap-free resume with <c>since</c>, and <c>resync</c> when a position cannot be served.</summary>
public sealed class ResumeTests(ResumeTests.Pipeline shared, TestInfrastructure infrastructure, ITestOutputHelper output) : IClassFixture<ResumeTests.Pipeline>
{
    private readonly KafkaBrokerKind infrastructureKind = infrastructure.Kafka.Kind;

    /// <summary>A recent window of 50 events per channel, so "beyond the window" is cheap to reach.</summary>
    public const int Window = 50;

    /// <summary>Replays from Kafka read 20 events per page, so a replay of a few windows spans many pages.</summary>
    public const int ReplayPage = 20;

    private LocalPipeline Stack => shared.Stack;

    private static string NewChannel() => $"room:{Guid.NewGuid():N}";

    [Fact]
    public async Task Events_carry_a_contiguous_per_channel_seq_and_ok_carries_the_position()
    {
        var channel = NewChannel();
        await using var client = await Stack.ConnectAsync(1, "ann", "room:*");
        var ok = await client.SubscribeAsync(channel);
        var epoch = (string?)ok["epoch"];
        Assert.False(string.IsNullOrEmpty(epoch));
        Assert.Equal(0UL, (ulong)ok["seq"]!);

        await using var publisher = await Stack.ConnectAsync(0, "ben", "room:*");
        for (var i = 0; i < 10; i++)
        {
            await publisher.PublishAsync(channel, i);
        }

        var events = await client.TakeEventsAsync(10, TimeSpan.FromSeconds(20));
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (ulong)i), events.Select(e => (ulong)e["seq"]!));
        Assert.All(events, e => Assert.Equal(epoch, (string?)e["epoch"]));

        // A later subscriber's ok says where the channel is.
        await using var late = await Stack.ConnectAsync(0, "cid", "room:*");
        var lateOk = await late.SubscribeAsync(channel);
        Assert.Equal(epoch, (string?)lateOk["epoch"]);
        Assert.Equal(10UL, (ulong)lateOk["seq"]!);
    }

    [Fact]
    public async Task A_client_that_reconnects_to_another_node_with_since_gets_every_missed_event_once_then_live_ones()
    {
        var channel = NewChannel();
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        var first = await Stack.ConnectAsync(0, "dee", "room:*");
        await first.SubscribeAsync(channel);
        for (var i = 0; i < 5; i++)
        {
            await publisher.PublishAsync(channel, i);
        }

        var seen = await first.TakeEventsAsync(5, TimeSpan.FromSeconds(20));
        var last = seen[^1];
        await first.DisposeAsync();

        // Missed while away.
        for (var i = 5; i < 25; i++)
        {
            await publisher.PublishAsync(channel, i);
        }

        var before = await ReplayedAsync(1);
        await using var resumed = await Stack.ConnectAsync(1, "dee", "room:*");
        var ok = await resumed.RequestAsync(new JsonObject
        {
            ["type"] = "subscribe",
            ["channel"] = channel,
            ["since"] = new JsonObject { ["epoch"] = (string?)last["epoch"], ["seq"] = (ulong)last["seq"]! },
        });
        Assert.Equal("ok", (string?)ok["type"]);
        // Acked means durable in ingress; the fanout may not have sequenced the last few yet.
        // Those then arrive live, after the replay, still in order.
        Assert.InRange((ulong)ok["seq"]!, 5UL, 25UL);
        Assert.Empty(resumed.Other);
        // Within the recent window: served from Redis, without touching Kafka.
        var after = await ReplayedAsync(1);
        Assert.Equal((double)((ulong)ok["seq"]! - 5), after.Redis - before.Redis);
        Assert.Equal(0, after.Kafka - before.Kafka);

        for (var i = 25; i < 30; i++)
        {
            await publisher.PublishAsync(channel, i);
        }

        var rest = await resumed.TakeEventsAsync(25, TimeSpan.FromSeconds(20));
        var data = seen.Concat(rest).Select(e => (int)e["data"]!).ToList();
        output.WriteLine($"published=30 delivered={data.Count}");
        Assert.Equal(Enumerable.Range(0, 30), data);
        Assert.Equal(Enumerable.Range(6, 25).Select(i => (ulong)i), rest.Select(e => (ulong)e["seq"]!));
        Assert.False(resumed.TryTakeEvent(out _));
    }

    [Fact]
    public async Task A_position_older_than_the_recent_window_is_replayed_from_the_kafka_log()
    {
        const int Published = PublishedBeyondTheWindow;
        var channel = NewChannel();
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        var epoch = await PublishBeyondTheWindowAsync(publisher, channel);

        var before = await ReplayedAsync(1);
        await using var client = await Stack.ConnectAsync(1, "fay", "room:*");
        var reply = await client.RequestAsync(new JsonObject
        {
            ["type"] = "subscribe",
            ["channel"] = channel,
            ["since"] = new JsonObject { ["epoch"] = epoch, ["seq"] = 2 },
        });
        Assert.Equal("ok", (string?)reply["type"]);
        Assert.Empty(client.Other);
        var replayed = await client.TakeEventsAsync(Published - 2, TimeSpan.FromSeconds(20));
        Assert.Equal(Enumerable.Range(3, Published - 2).Select(i => (ulong)i), replayed.Select(e => (ulong)e["seq"]!));
        Assert.Equal(Enumerable.Range(2, Published - 2), replayed.Select(e => (int)e["data"]!));
        Assert.False(client.TryTakeEvent(out _));
        var after = await ReplayedAsync(1);
        Assert.Equal(Published - 2, after.Kafka - before.Kafka);
        Assert.Equal(0, after.Redis - before.Redis);
    }

    [Fact]
    public async Task A_replay_whose_later_pages_are_gone_sends_the_pages_it_had_then_resync()
    {
        const int Published = PublishedBeyondTheWindow;
        var channel = NewChannel();
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        var epoch = await PublishBeyondTheWindowAsync(publisher, channel);

        // The index loses seqs 50-60 (the third page from seq 2 on: 43-62) while the first two
        // pages are intact: the replay finds the gap only after it has started sending.
        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(Stack.RedisConfiguration);
        Assert.Equal(11, await redis.GetDatabase().SortedSetRemoveRangeByScoreAsync(Stack.Names.ChannelIndexKey(channel), 50, 60));

        await using var client = await Stack.ConnectAsync(1, "gus", "room:*");
        var reply = await client.RequestAsync(new JsonObject
        {
            ["type"] = "subscribe",
            ["channel"] = channel,
            ["since"] = new JsonObject { ["epoch"] = epoch, ["seq"] = 2 },
        });
        Assert.Equal("ok", (string?)reply["type"]);
        Assert.Equal((ulong)Published, (ulong)reply["seq"]!);

        // Every event of the two whole pages, in order, then resync at the head (before the ok).
        var replayed = new List<JsonObject>();
        while (client.TryTakeEvent(out var replayedEvent))
        {
            replayed.Add(replayedEvent!);
        }

        Assert.Equal(Enumerable.Range(3, 2 * ReplayPage).Select(i => (ulong)i), replayed.Select(e => (ulong)e["seq"]!));
        Assert.True(client.Other.TryDequeue(out var resync), "no resync");
        Assert.Equal("beyond_retention", (string?)resync["reason"]);
        Assert.Equal((ulong)Published, (ulong)resync["seq"]!);

        // Then live.
        await publisher.PublishAsync(channel, Published);
        Assert.Equal((ulong)Published + 1, (ulong)(await client.NextEventAsync())["seq"]!);
    }

    [Fact]
    public async Task A_position_that_cannot_be_served_gets_resync_with_a_fresh_position_never_a_silent_gap()
    {
        var channel = NewChannel();
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        var ok = await publisher.SubscribeAsync(channel);
        var epoch = (string)ok["epoch"]!;
        for (var i = 0; i < 5; i++)
        {
            await publisher.PublishAsync(channel, i);
        }

        Assert.Equal(5, (await publisher.TakeEventsAsync(5, TimeSpan.FromSeconds(30))).Count);

        foreach (var (since, reason) in new[]
        {
            (new JsonObject { ["epoch"] = "another-epoch", ["seq"] = 3 }, "epoch_changed"),
            (new JsonObject { ["epoch"] = epoch, ["seq"] = 10_000 }, "unknown_position"),
        })
        {
            await using var client = await Stack.ConnectAsync(1, "eve", "room:*");
            var reply = await client.RequestAsync(new JsonObject { ["type"] = "subscribe", ["channel"] = channel, ["since"] = since });
            Assert.Equal("ok", (string?)reply["type"]);
            Assert.True(client.Other.TryDequeue(out var resync), $"no resync for {reason}");
            Assert.Equal("resync", (string?)resync["type"]);
            Assert.Equal(reason, (string?)resync["reason"]);
            Assert.Equal(epoch, (string?)resync["epoch"]);
            Assert.Equal(5UL, (ulong)resync["seq"]!);
            Assert.False(client.TryTakeEvent(out _));
        }

        // At the head already: nothing to replay and nothing to resync.
        await using var current = await Stack.ConnectAsync(1, "eve", "room:*");
        var atHead = await current.RequestAsync(new JsonObject { ["type"] = "subscribe", ["channel"] = channel, ["since"] = new JsonObject { ["epoch"] = epoch, ["seq"] = 5 } });
        Assert.Equal("ok", (string?)atHead["type"]);
        Assert.Equal(5UL, (ulong)atHead["seq"]!);
        Assert.False(current.Other.TryDequeue(out var unexpected), $"unexpected {unexpected}");
        Assert.False(current.TryTakeEvent(out _));
    }

    [Fact]
    public async Task A_position_further_behind_than_the_replay_limit_gets_resync_and_one_within_it_is_replayed()
    {
        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "replay-limit", gateways: 1, settings: new Dictionary<string, string?>
        {
            ["Gateway__MaxReplayEvents"] = "3",
        });
        var channel = NewChannel();
        await using var publisher = await pipeline.ConnectAsync(0, "pub", "room:*");
        var epoch = (string)(await publisher.SubscribeAsync(channel))["epoch"]!;
        for (var i = 0; i < 5; i++)
        {
            await publisher.PublishAsync(channel, i);
        }

        Assert.Equal(5, (await publisher.TakeEventsAsync(5, TimeSpan.FromSeconds(30))).Count);

        // Four events behind: more than the limit of three.
        await using var far = await pipeline.ConnectAsync(0, "far", "room:*");
        var farReply = await far.RequestAsync(new JsonObject { ["type"] = "subscribe", ["channel"] = channel, ["since"] = new JsonObject { ["epoch"] = epoch, ["seq"] = 1 } });
        Assert.Equal("ok", (string?)farReply["type"]);
        Assert.True(far.Other.TryDequeue(out var resync), "no resync");
        Assert.Equal("resync", (string?)resync["type"]);
        Assert.Equal("beyond_replay_limit", (string?)resync["reason"]);
        Assert.Equal(5UL, (ulong)resync["seq"]!);
        Assert.False(far.TryTakeEvent(out _));

        // Three behind: replayed.
        await using var near = await pipeline.ConnectAsync(0, "near", "room:*");
        await near.RequestAsync(new JsonObject { ["type"] = "subscribe", ["channel"] = channel, ["since"] = new JsonObject { ["epoch"] = epoch, ["seq"] = 2 } });
        var replayed = await near.TakeEventsAsync(3, TimeSpan.FromSeconds(30));
        Assert.Equal([3UL, 4UL, 5UL], replayed.Select(e => (ulong)e["seq"]!));
        Assert.False(near.Other.TryDequeue(out var unexpected), $"unexpected {unexpected}");
    }

    [Fact]
    public async Task A_position_older_than_kafka_retention_gets_resync()
    {
        // The embedded broker keeps about 5 MiB per partition, a retention small enough to pass.
        Assert.SkipUnless(infrastructureKind == KafkaBrokerKind.Embedded, "needs the embedded broker's small retention");
        var channel = NewChannel();
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        var ok = await publisher.SubscribeAsync(channel);
        var epoch = (string)ok["epoch"]!;
        var big = new string('x', 60 * 1024);
        const int Published = 110;
        for (var i = 0; i < Published; i++)
        {
            // One at a time, each delivered before the next: the live path (fanout, node topic)
            // never falls 5 MiB behind and loses events to the same retention this test exceeds
            // for the channel's history. A loaded machine made that happen.
            await publisher.PublishAsync(channel, big);
            Assert.Single(await publisher.TakeEventsAsync(1, TimeSpan.FromSeconds(30)));
        }

        await using var client = await Stack.ConnectAsync(1, "old", "room:*");
        var reply = await client.RequestAsync(new JsonObject
        {
            ["type"] = "subscribe",
            ["channel"] = channel,
            ["since"] = new JsonObject { ["epoch"] = epoch, ["seq"] = 1 },
        });
        Assert.Equal("ok", (string?)reply["type"]);
        Assert.True(client.Other.TryDequeue(out var resync), "no resync");
        Assert.Equal("beyond_retention", (string?)resync["reason"]);
        Assert.Equal((ulong)Published, (ulong)resync["seq"]!);
        Assert.False(client.TryTakeEvent(out _));
    }

    [Fact]
    public async Task Subscribing_while_events_flow_never_misses_the_first_event_after_the_ok_position()
    {
        var channel = NewChannel();
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        using var stop = new CancellationTokenSource();
        var published = 0;
        var flow = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await publisher.PublishAsync(channel, Interlocked.Increment(ref published));
            }
        });

        // Alternately a fresh subscribe (the first event must be the one after the ok position)
        // and a resume from the previous round's position (the first event must follow it).
        const int Rounds = 1_000;
        (string Epoch, ulong Seq)? previous = null;
        for (var round = 0; round < Rounds; round++)
        {
            await using var client = await Stack.ConnectAsync(round % 2, "sub", "room:*");
            var request = new JsonObject { ["type"] = "subscribe", ["channel"] = channel };
            var resume = round % 2 == 1 && previous is not null;
            if (resume)
            {
                request["since"] = new JsonObject { ["epoch"] = previous!.Value.Epoch, ["seq"] = previous.Value.Seq };
            }

            var ok = await client.RequestAsync(request);
            Assert.Equal("ok", (string?)ok["type"]);
            var head = (ulong)ok["seq"]!;
            var expectedFirst = resume ? previous!.Value.Seq + 1 : head + 1;
            var next = await client.NextEventAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(expectedFirst, (ulong)next["seq"]!);
            previous = ((string)ok["epoch"]!, head);
        }

        await stop.CancelAsync();
        await flow.WaitAsync(TimeSpan.FromSeconds(20));
        output.WriteLine($"rounds={Rounds} published={published}");
    }

    [Fact]
    public async Task A_node_that_missed_events_fills_the_gap_from_history_before_delivering_more()
    {
        var channel = NewChannel();
        await using var client = await Stack.ConnectAsync(1, "gil", "room:*");
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        await client.SubscribeAsync(channel);
        await publisher.PublishAsync(channel, 1);
        Assert.Equal(1UL, (ulong)(await client.NextEventAsync())["seq"]!);

        // Take gw-1 out of the channel's route set behind its back: the next events are not
        // routed to it, as with a route lost in Redis.
        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(Stack.RedisConfiguration);
        var db = redis.GetDatabase();
        await db.SetRemoveAsync(Stack.Names.RouteKey(channel), "gw-1");
        await publisher.PublishAsync(channel, 2);
        await publisher.PublishAsync(channel, 3);

        // Wait until the fanout has sequenced both, then put the route back.
        await PipelineTests.WaitUntilAsync(async () => (long?)await db.HashGetAsync(Stack.Names.ChannelStateKey(channel), "seq") == 3, TimeSpan.FromSeconds(10));
        await db.SetAddAsync(Stack.Names.RouteKey(channel), "gw-1");
        await publisher.PublishAsync(channel, 4);

        var events = await client.TakeEventsAsync(3, TimeSpan.FromSeconds(10));
        Assert.Equal([2UL, 3UL, 4UL], events.Select(e => (ulong)e["seq"]!));
        Assert.Equal([2, 3, 4], events.Select(e => (int)e["data"]!));
        Assert.Empty(client.Other);
    }

    /// <summary>Events <see cref="PublishBeyondTheWindowAsync"/> publishes: three recent windows.</summary>
    private const int PublishedBeyondTheWindow = Window * 3;

    /// <summary>Publishes <see cref="PublishedBeyondTheWindow"/> events (data 0, 1, ...) to a new channel and waits for them; returns the channel's epoch.</summary>
    private static async Task<string> PublishBeyondTheWindowAsync(TestClient publisher, string channel)
    {
        var ok = await publisher.SubscribeAsync(channel);
        for (var i = 0; i < PublishedBeyondTheWindow; i++)
        {
            await publisher.PublishAsync(channel, i);
        }

        Assert.Equal(PublishedBeyondTheWindow, (await publisher.TakeEventsAsync(PublishedBeyondTheWindow, TimeSpan.FromSeconds(30))).Count);
        return (string)ok["epoch"]!;
    }

    /// <summary>Events a gateway has replayed so far, by where it read them.</summary>
    private async Task<(double Redis, double Kafka)> ReplayedAsync(int gateway)
    {
        var samples = await PrometheusText.ScrapeAsync(Stack.Gateways[gateway].Http);
        return (samples.Sum("realtime_gateway_replayed_events_total", ("source", "redis")),
            samples.Sum("realtime_gateway_replayed_events_total", ("source", "kafka")));
    }

    /// <summary>Its own pipeline, with a small recent window.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "resume", settings: new Dictionary<string, string?>
    {
        ["Fanout__RecentEventsPerChannel"] = Window.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Gateway__ReplayPageEvents"] = ReplayPage.ToString(System.Globalization.CultureInfo.InvariantCulture),
    });
}
