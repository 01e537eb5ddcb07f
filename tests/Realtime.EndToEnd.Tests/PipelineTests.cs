using System.Net;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Realtime.Contracts.V1;
using StackExchange.Redis;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// The spine, end to end: gateways → ingress topic → fanout → Redis routes → node topics →
/// sockets, with every component real and on loopback.
/// </summary>
public sealed class PipelineTests(SharedPipeline shared, ITestOutputHelper output) : IClassFixture<SharedPipeline>
{
    private LocalPipeline Stack => shared.Stack;

    private static string NewChannel(string prefix = "room") => $"{prefix}:{Guid.NewGuid():N}";

    [Fact]
    public async Task Event_published_over_websocket_on_one_node_arrives_on_the_other()
    {
        var channel = NewChannel();
        await using var listener = await Stack.ConnectAsync(1, "bob", "room:*");
        await using var publisher = await Stack.ConnectAsync(0, "alice", "room:*");

        var ok = await listener.SubscribeAsync(channel);
        Assert.Equal("ok", (string?)ok["type"]);
        Assert.Equal(channel, (string?)ok["channel"]);

        var ack = await publisher.PublishAsync(channel, new JsonObject { ["text"] = "hello" });
        Assert.Equal("ack", (string?)ack["type"]);
        var eventId = (string?)ack["eventId"];
        Assert.False(string.IsNullOrEmpty(eventId));

        var received = await listener.NextEventAsync();
        Assert.Equal(channel, (string?)received["channel"]);
        Assert.Equal(eventId, (string?)received["eventId"]);
        Assert.Equal("message.created", (string?)received["event"]);
        Assert.Equal("hello", (string?)received["data"]!["text"]);
        Assert.NotNull((string?)received["publishedAt"]);
        Assert.Equal("gw-1", (string?)listener.Connected!["node"]);
    }

    [Fact]
    public async Task Event_published_over_grpc_arrives_on_websocket_subscribers_of_both_nodes()
    {
        var channel = NewChannel();
        await using var onNode0 = await Stack.ConnectAsync(0, "carol", "room:*");
        await using var onNode1 = await Stack.ConnectAsync(1, "dave", "room:*");
        await onNode0.SubscribeAsync(channel);
        await onNode1.SubscribeAsync(channel);

        var client = Stack.PublisherClient(0);
        var response = await client.PublishAsync(
            new PublishRequest { Channel = channel, EventType = "order.updated", Payload = ByteString.CopyFromUtf8("{\"n\":1}") },
            Stack.ServiceAuth("room:*"),
            deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.False(string.IsNullOrEmpty(response.EventId));
        Assert.Equal(Stack.Names.IngressTopic, response.Position.Topic);

        foreach (var client2 in new[] { onNode0, onNode1 })
        {
            var received = await client2.NextEventAsync();
            Assert.Equal(response.EventId, (string?)received["eventId"]);
            Assert.Equal(1, (int?)received["data"]!["n"]);
        }

        var batch = new PublishBatchRequest();
        for (var i = 0; i < 5; i++)
        {
            batch.Events.Add(new PublishRequest { Channel = channel, EventType = "order.updated", Payload = ByteString.CopyFromUtf8($"{{\"n\":{i + 2}}}") });
        }

        var batchResponse = await client.PublishBatchAsync(batch, Stack.ServiceAuth("room:*"), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal(5, batchResponse.Results.Count);
        var events = await onNode1.TakeEventsAsync(5, TimeSpan.FromSeconds(10));
        Assert.Equal(batchResponse.Results.Select(r => r.EventId), events.Select(e => (string?)e["eventId"]));
    }

    [Fact]
    public async Task A_thousand_events_on_one_channel_arrive_in_publish_order()
    {
        const int Count = 1_000;
        var channel = NewChannel();
        await using var remote = await Stack.ConnectAsync(1, "erin", "room:*");
        await using var local = await Stack.ConnectAsync(0, "frank", "room:*");
        await using var publisher = await Stack.ConnectAsync(0, "grace", "room:*");
        await remote.SubscribeAsync(channel);
        await local.SubscribeAsync(channel);

        // Publishes are pipelined: the next is sent before the previous one is acknowledged.
        var acks = new List<Task<JsonObject>>(Count);
        for (var i = 0; i < Count; i++)
        {
            acks.Add(await publisher.SendRequestAsync(new JsonObject { ["type"] = "publish", ["channel"] = channel, ["event"] = "n", ["data"] = i }));
        }

        var acked = await Task.WhenAll(acks).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.All(acked, a => Assert.Equal("ack", (string?)a["type"]));

        foreach (var (name, client) in new[] { ("remote", remote), ("local", local) })
        {
            var events = await client.TakeEventsAsync(Count, TimeSpan.FromSeconds(60));
            output.WriteLine($"{name}: published={Count} delivered={events.Count}");
            Assert.Equal(Enumerable.Range(0, Count), events.Select(e => (int)e["data"]!));
        }
    }

    [Fact]
    public async Task A_node_without_subscribers_of_a_channel_receives_nothing_on_its_delivery_topic()
    {
        var channel = NewChannel();
        await using var subscriber = await Stack.ConnectAsync(0, "heidi", "room:*");
        await subscriber.SubscribeAsync(channel);
        var node1Topic = Stack.Names.NodeTopic("gw-1");
        var node0Topic = Stack.Names.NodeTopic("gw-0");
        var node1Before = Stack.TopicEndOffsets(node1Topic);
        var node0Before = Stack.TopicEndOffsets(node0Topic);

        for (var i = 0; i < 20; i++)
        {
            await subscriber.PublishAsync(channel, i);
        }

        // Once gw-0's subscriber has all 20, the fanout has routed them all.
        var events = await subscriber.TakeEventsAsync(20, TimeSpan.FromSeconds(20));
        Assert.Equal(20, events.Count);
        // Node records carry a batch of deliveries each: at least one, at most one per event.
        Assert.InRange(Stack.TopicEndOffsets(node0Topic), node0Before + 1, node0Before + 20);
        Assert.Equal(node1Before, Stack.TopicEndOffsets(node1Topic));
    }

    [Fact]
    public async Task The_route_is_removed_after_the_last_unsubscribe_and_after_a_disconnect()
    {
        var channel = NewChannel();
        using var redis = await ConnectionMultiplexer.ConnectAsync(Stack.RedisConfiguration);
        var db = redis.GetDatabase();
        var routeKey = Stack.Names.RouteKey(channel);

        await using var first = await Stack.ConnectAsync(1, "ivan", "room:*");
        var second = await Stack.ConnectAsync(1, "judy", "room:*");
        await first.SubscribeAsync(channel);
        Assert.Equal(["gw-1"], (await db.SetMembersAsync(routeKey)).Select(v => (string?)v));
        await second.SubscribeAsync(channel);

        // One of two subscribers leaves: the node still has a subscriber, the route stays.
        var unsubscribed = await first.UnsubscribeAsync(channel);
        Assert.Equal("ok", (string?)unsubscribed["type"]);
        Assert.True(await db.SetContainsAsync(routeKey, "gw-1"));

        // The last one disconnects: the route goes.
        await second.DisposeAsync();
        await WaitUntilAsync(async () => !await db.SetContainsAsync(routeKey, "gw-1"), TimeSpan.FromSeconds(10));

        // Same for an explicit last unsubscribe.
        await first.SubscribeAsync(channel);
        Assert.True(await db.SetContainsAsync(routeKey, "gw-1"));
        await first.UnsubscribeAsync(channel);
        Assert.False(await db.SetContainsAsync(routeKey, "gw-1"));
        Assert.False(await db.SetContainsAsync(Stack.Names.NodeRoutesKey("gw-1"), channel));
    }

    [Fact]
    public async Task A_bad_or_missing_token_is_refused_at_the_handshake_with_401_and_no_upgrade()
    {
        var uri = Stack.Gateways[0].WebSocket;
        var wrongKey = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(48));
        var cases = new (string Name, string? Header, string? Query)[]
        {
            ("missing", null, null),
            ("garbage", "Bearer not-a-jwt", null),
            ("wrong signature", $"Bearer {Stack.TokenWith("mallory", ["*"], TimeSpan.FromMinutes(5), key: wrongKey)}", null),
            ("expired", $"Bearer {Stack.TokenWith("mallory", ["*"], TimeSpan.FromMinutes(1), notBefore: DateTime.UtcNow.AddHours(-2))}", null),
            ("wrong issuer", $"Bearer {Stack.TokenWith("mallory", ["*"], TimeSpan.FromMinutes(5), issuer: "someone-else")}", null),
            ("bad query token", null, "access_token=abc.def.ghi"),
        };

        foreach (var (name, header, query) in cases)
        {
            var status = await TestClient.HandshakeStatusAsync(uri, header, query);
            output.WriteLine($"{name}: {(int)status}");
            Assert.Equal(HttpStatusCode.Unauthorized, status);
        }

        // A short-lived token in the query string (as browsers send it) is accepted; a long-lived one is not.
        var good = Stack.TokenWith("trent", ["room:*"], TimeSpan.FromMinutes(5));
        Assert.Equal(HttpStatusCode.SwitchingProtocols, await TestClient.HandshakeStatusAsync(uri, null, $"access_token={good}"));
        Assert.Equal(HttpStatusCode.Unauthorized, await TestClient.HandshakeStatusAsync(uri, null, $"access_token={Stack.TokenWith("trent", ["room:*"], TimeSpan.FromMinutes(6))}"));
    }

    [Fact]
    public async Task A_subscribe_or_publish_outside_the_token_patterns_gets_an_error_frame_and_the_connection_lives_on()
    {
        await using var client = await Stack.ConnectAsync(0, "oscar", "room:*");
        var denied = await client.SubscribeAsync("secret:1");
        Assert.Equal("error", (string?)denied["type"]);
        Assert.Equal("not_authorized", (string?)denied["code"]);

        var deniedPublish = await client.PublishAsync("secret:1", 1);
        Assert.Equal("not_authorized", (string?)deniedPublish["code"]);

        var invalid = await client.SubscribeAsync("room:{bad}");
        Assert.Equal("invalid_channel", (string?)invalid["code"]);

        var malformed = new JsonObject { ["type"] = "subscribe" };
        var missingChannel = await client.RequestAsync(malformed);
        Assert.Equal("bad_request", (string?)missingChannel["code"]);

        var unknown = await client.RequestAsync(new JsonObject { ["type"] = "teleport" });
        Assert.Equal("unknown_type", (string?)unknown["code"]);

        Assert.Equal("pong", (string?)(await client.PingAsync())["type"]);
        Assert.Equal("ok", (string?)(await client.SubscribeAsync(NewChannel()))["type"]);
    }

    [Fact]
    public async Task Grpc_publish_reports_documented_status_codes()
    {
        var client = Stack.PublisherClient(1);
        var deadline = DateTime.UtcNow.AddSeconds(10);

        var unauthenticated = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.PublishAsync(new PublishRequest { Channel = "room:1", EventType = "x", Payload = ByteString.CopyFromUtf8("{}") }, deadline: deadline));
        Assert.Equal(StatusCode.Unauthenticated, unauthenticated.StatusCode);

        var denied = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.PublishAsync(new PublishRequest { Channel = "secret:1", EventType = "x", Payload = ByteString.CopyFromUtf8("{}") }, Stack.ServiceAuth("room:*"), deadline: deadline));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);

        var badChannel = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.PublishAsync(new PublishRequest { Channel = "room 1", EventType = "x", Payload = ByteString.CopyFromUtf8("{}") }, Stack.ServiceAuth("*"), deadline: deadline));
        Assert.Equal(StatusCode.InvalidArgument, badChannel.StatusCode);

        var badJson = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.PublishAsync(new PublishRequest { Channel = "room:1", EventType = "x", Payload = ByteString.CopyFromUtf8("{oops") }, Stack.ServiceAuth("*"), deadline: deadline));
        Assert.Equal(StatusCode.InvalidArgument, badJson.StatusCode);

        var tooLarge = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.PublishAsync(new PublishRequest { Channel = "room:1", EventType = "x", Payload = ByteString.CopyFrom(new byte[128 * 1024]), ContentType = "application/octet-stream" }, Stack.ServiceAuth("*"), deadline: deadline));
        Assert.Equal(StatusCode.ResourceExhausted, tooLarge.StatusCode);
    }

    [Fact]
    public async Task A_publish_retried_with_the_same_client_msg_id_returns_the_original_event_and_publishes_nothing_new()
    {
        var channel = NewChannel();
        await using var subscriber = await Stack.ConnectAsync(1, "sub", "room:*");
        await subscriber.SubscribeAsync(channel);
        await using var publisher = await Stack.ConnectAsync(0, "ida", "room:*");

        JsonObject Publish(string clientMsgId, int n) => new() { ["type"] = "publish", ["channel"] = channel, ["event"] = "m", ["data"] = n, ["clientMsgId"] = clientMsgId };
        var first = await publisher.RequestAsync(Publish("msg-1", 1));
        var retry = await publisher.RequestAsync(Publish("msg-1", 1));
        Assert.Equal("ack", (string?)retry["type"]);
        Assert.Equal((string?)first["eventId"], (string?)retry["eventId"]);
        Assert.Equal((long)first["position"]!["offset"]!, (long)retry["position"]!["offset"]!);

        // Over gRPC too, keyed by the service's own subject.
        var client = Stack.PublisherClient(1);
        var request = new PublishRequest { Channel = channel, EventType = "m", Payload = ByteString.CopyFromUtf8("2"), IdempotencyKey = "msg-1" };
        var grpcFirst = await client.PublishAsync(request, Stack.ServiceAuth("room:*"), deadline: DateTime.UtcNow.AddSeconds(10));
        var grpcRetry = await client.PublishAsync(request, Stack.ServiceAuth("room:*"), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal(grpcFirst.EventId, grpcRetry.EventId);
        Assert.NotEqual((string?)first["eventId"], grpcFirst.EventId);

        await publisher.PublishAsync(channel, 3);
        var events = await subscriber.TakeEventsAsync(3, TimeSpan.FromSeconds(10));
        Assert.Equal([1, 2, 3], events.Select(e => (int)e["data"]!));
        Assert.Equal([1UL, 2UL, 3UL], events.Select(e => (ulong)e["seq"]!));
        Assert.False(subscriber.TryTakeEvent(out _));
    }

    internal static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Condition not met within {timeout}.");
            }

            await Task.Delay(50);
        }
    }
}
