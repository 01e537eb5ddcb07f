using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Realtime.Contracts.V1.Client;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// The transports besides JSON over WebSocket, over real sockets: SSE with cursor ids and
/// Last-Event-ID resume, long-poll, HTTP publish, the protobuf subprotocol, and an operator's
/// disconnect.
/// </summary>
public sealed class TransportTests(TransportTests.Pipeline shared) : IClassFixture<TransportTests.Pipeline>
{
    private const string ProtobufSubprotocol = "realtime.v1.proto";

    [Fact]
    public async Task Sse_streams_events_with_cursor_ids_and_resumes_on_another_node_from_Last_Event_ID()
    {
        var stack = shared.Stack;
        var channel = NewChannel();
        var token = stack.Token("sse-reader", "room:*");
        string cursor;
        await using (var stream = await SseClient.OpenAsync(stack.Gateways[0].Http, $"channels={channel}", token))
        {
            Assert.Equal(HttpStatusCode.OK, stream.Status);
            Assert.Equal("text/event-stream", stream.Response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("no", stream.Response.Headers.GetValues("X-Accel-Buffering").Single());
            Assert.Contains("no-cache", stream.Response.Headers.CacheControl?.ToString() ?? string.Empty, StringComparison.Ordinal);
            await stream.NextFrameAsync("ok");
            for (var n = 1; n <= 5; n++)
            {
                await PublishAsync(1, channel, n);
            }

            for (var n = 1; n <= 5; n++)
            {
                var frame = await stream.NextFrameAsync("event");
                Assert.Equal(n, (int)frame["data"]!["n"]!);
                Assert.Equal((ulong)n, (ulong)frame["seq"]!);
            }

            cursor = stream.LastEventId ?? throw new InvalidOperationException("events carried no id");
        }

        // Missed while away: the cursor brings exactly these, in order, on the other node.
        for (var n = 6; n <= 10; n++)
        {
            await PublishAsync(1, channel, n);
        }

        await using var resumed = await SseClient.OpenAsync(stack.Gateways[1].Http, $"channels={channel}", token, lastEventId: cursor);
        Assert.Equal(HttpStatusCode.OK, resumed.Status);
        // A publish is acknowledged once it is in the ingress log, before the fanout sequenced it:
        // events sequenced after the resume read the head come live, after its ok. Either way each
        // comes once, in order.
        var received = new List<int>();
        var sawOk = false;
        while (received.Count < 5 || !sawOk)
        {
            var frame = (await resumed.NextAsync())!.Json;
            if ((string?)frame["type"] == "ok")
            {
                sawOk = true;
            }
            else if ((string?)frame["type"] == "event")
            {
                received.Add((int)frame["data"]!["n"]!);
            }
        }

        Assert.Equal([6, 7, 8, 9, 10], received);
        await PublishAsync(0, channel, 11);
        Assert.Equal(11, (int)(await resumed.NextFrameAsync("event"))["data"]!["n"]!);
    }

    [Fact]
    public async Task Sse_sends_heartbeat_comments_on_an_idle_stream()
    {
        var stack = shared.Stack;
        await using var stream = await SseClient.OpenAsync(stack.Gateways[0].Http, $"channels={NewChannel()}", stack.Token("idle", "room:*"));
        await stream.NextFrameAsync("ok");
        var message = await stream.NextAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(message);
        Assert.NotNull(message.Comment);
        Assert.Null(message.Data);
    }

    [Fact]
    public async Task Sse_refuses_bad_requests_with_a_status_before_streaming()
    {
        var stack = shared.Stack;
        var gateway = stack.Gateways[0].Http;
        var token = stack.Token("picky", "room:*");
        var cases = new (string Query, string? Token, string? LastEventId, HttpStatusCode Status, string Error)[]
        {
            ($"channels={NewChannel()}", null, null, HttpStatusCode.Unauthorized, "unauthorized"),
            ("channels=", token, null, HttpStatusCode.BadRequest, "bad_request"),
            ("channels=room:bad%20name", token, null, HttpStatusCode.BadRequest, "invalid_channel"),
            ("channels=secret:x", token, null, HttpStatusCode.Forbidden, "not_authorized"),
            ($"channels={NewChannel()}", token, "not-a-cursor!", HttpStatusCode.BadRequest, "bad_cursor"),
            ("channels=" + string.Join(',', Enumerable.Range(0, 201).Select(i => $"room:c{i}")), token, null, HttpStatusCode.BadRequest, "too_many_channels"),
        };

        foreach (var (query, caseToken, lastEventId, status, error) in cases)
        {
            await using var stream = await SseClient.OpenAsync(gateway, query, caseToken, lastEventId);
            Assert.Equal(status, stream.Status);
            var body = await stream.Response.Content.ReadFromJsonAsync<JsonObject>();
            Assert.Equal(error, (string?)body!["error"]);
        }
    }

    [Fact]
    public async Task Long_poll_starts_at_once_holds_until_an_event_and_pages_through_a_backlog()
    {
        var stack = shared.Stack;
        var channel = NewChannel();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", stack.Token("poller", "room:*"));
        var gateway = stack.Gateways[0].Http;

        var start = await PollAsync(http, gateway, $"channels={channel}");
        Assert.Equal(HttpStatusCode.OK, start.Status);
        Assert.Empty(start.Events);

        // Held: answered when the event arrives, not before.
        var held = PollAsync(http, gateway, $"cursor={start.Cursor}");
        await Task.Delay(300);
        Assert.False(held.IsCompleted, "the poll was answered before anything happened");
        await PublishAsync(1, channel, 1);
        var first = await held.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([1], first.Events.Select(e => (int)e["data"]!["n"]!));

        // A backlog comes back in pages of LongPollMaxEvents (10 here), in order, each with its cursor.
        for (var n = 2; n <= 26; n++)
        {
            await PublishAsync(1, channel, n);
        }

        var received = new List<int>();
        var cursor = first.Cursor;
        while (received.Count < 25)
        {
            var page = await PollAsync(http, gateway, $"cursor={cursor}");
            Assert.Equal(HttpStatusCode.OK, page.Status);
            Assert.InRange(page.Events.Count, 1, 10);
            received.AddRange(page.Events.Select(e => (int)e["data"]!["n"]!));
            cursor = page.Cursor;
        }

        Assert.Equal(Enumerable.Range(2, 25), received);

        // Nothing new within the hold time (2 s here): 204, and the same cursor stays valid.
        var idle = await PollAsync(http, stack.Gateways[1].Http, $"cursor={cursor}");
        Assert.Equal(HttpStatusCode.NoContent, idle.Status);
        await PublishAsync(0, channel, 27);
        var last = await PollAsync(http, stack.Gateways[1].Http, $"cursor={cursor}");
        Assert.Equal([27], last.Events.Select(e => (int)e["data"]!["n"]!));
    }

    [Fact]
    public async Task Long_poll_refuses_bad_cursors_and_foreign_channels()
    {
        var stack = shared.Stack;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", stack.Token("poller", "room:*"));
        var gateway = stack.Gateways[0].Http;
        Assert.Equal(HttpStatusCode.BadRequest, (await PollAsync(http, gateway, "cursor=%21%21")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await PollAsync(http, gateway, string.Empty)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await PollAsync(http, gateway, "channels=secret:x")).Status);

        // A cursor grants nothing by itself: the token of each poll is checked against its channels.
        var secret = await PollAsync(http, gateway, "channels=room:mine");
        using var other = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        other.DefaultRequestHeaders.Authorization = new("Bearer", stack.Token("other", "org:*"));
        Assert.Equal(HttpStatusCode.Forbidden, (await PollAsync(other, gateway, $"cursor={secret.Cursor}")).Status);
    }

    [Fact]
    public async Task Http_publish_acknowledges_once_per_idempotency_key_and_refuses_bad_input()
    {
        var stack = shared.Stack;
        var channel = NewChannel();
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", stack.Token("poster", "room:*"));
        var url = new Uri(stack.Gateways[0].Http, $"/v1/channels/{channel}/events");

        var body = """{"event":"msg","data":{"n":1},"clientMsgId":"k-1"}""";
        using var first = await http.PostAsync(url, new StringContent(body, Encoding.UTF8, "application/json"));
        using var retry = await http.PostAsync(url, new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        var ack = (await first.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal((string?)ack["eventId"], (string?)(await retry.Content.ReadFromJsonAsync<JsonObject>())!["eventId"]);
        Assert.NotNull(ack["position"]?["offset"]);

        var cases = new (string Body, HttpStatusCode Status, string Error)[]
        {
            ("""{"event":"msg","data":{"n":""", HttpStatusCode.BadRequest, "bad_request"),
            ("""{"data":1}""", HttpStatusCode.BadRequest, "bad_request"),
            ("""{"event":5}""", HttpStatusCode.BadRequest, "bad_request"),
            ("{\"event\":\"msg\",\"data\":\"" + new string('x', 70_000) + "\"}", HttpStatusCode.RequestEntityTooLarge, "payload_too_large"),
        };
        foreach (var (caseBody, status, error) in cases)
        {
            using var response = await http.PostAsync(url, new StringContent(caseBody, Encoding.UTF8, "application/json"));
            Assert.Equal(status, response.StatusCode);
            Assert.Equal(error, (string?)(await response.Content.ReadFromJsonAsync<JsonObject>())!["error"]);
        }

        using var forbidden = await http.PostAsync(new Uri(stack.Gateways[0].Http, "/v1/channels/secret:x/events"), new StringContent(body));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        using var anonymous = new HttpClient();
        using var unauthorized = await anonymous.PostAsync(url, new StringContent(body));
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorized.StatusCode);

        // One event in the channel, not two, and none of the refused ones.
        var history = await http.GetFromJsonAsync<JsonObject>(new Uri(stack.Gateways[1].Http, $"/v1/channels/{channel}/events?since=0"));
        Assert.Single(history!["events"]!.AsArray());
    }

    [Fact]
    public async Task Protobuf_subprotocol_subscribes_publishes_and_shares_events_with_json_clients()
    {
        var stack = shared.Stack;
        var channel = NewChannel();
        using var socket = await ConnectProtobufAsync(stack.Gateways[0], stack.Token("proto", "room:*"));
        Assert.Equal(ProtobufSubprotocol, socket.SubProtocol);
        Assert.NotNull((await ReceiveAsync(socket)).Connected);

        await SendAsync(socket, new ClientMessage { Id = "s1", Subscribe = new Subscribe { Channel = channel } });
        var ok = await ReceiveAsync(socket);
        Assert.Equal("s1", ok.Id);
        Assert.Equal(channel, ok.Ok.Channel);

        await using var json = await stack.ConnectAsync(1, "json", "room:*");
        await json.SubscribeAsync(channel);

        // Published over protobuf with JSON data: acknowledged, and JSON clients get the data inline.
        await SendAsync(socket, new ClientMessage
        {
            Id = "p1",
            Publish = new Publish { Channel = channel, Event = "msg", Data = ByteString.CopyFromUtf8("""{"n":1}"""), ContentType = "application/json" },
        });
        var received = new List<ServerMessage>();
        while (received.All(m => m.KindCase != ServerMessage.KindOneofCase.Ack) || received.All(m => m.KindCase != ServerMessage.KindOneofCase.Event))
        {
            received.Add(await ReceiveAsync(socket));
        }

        Assert.Equal("p1", received.Single(m => m.KindCase == ServerMessage.KindOneofCase.Ack).Id);
        var delivered = received.Single(m => m.KindCase == ServerMessage.KindOneofCase.Event).Event;
        Assert.Equal("""{"n":1}""", delivered.Data.ToStringUtf8());
        Assert.Equal(1UL, delivered.Position.Seq);
        var viaJson = await json.NextEventAsync();
        Assert.Equal(1, (int)viaJson["data"]!["n"]!);

        // Binary data on the protobuf protocol stays binary; JSON clients get it base64-encoded.
        await SendAsync(socket, new ClientMessage
        {
            Publish = new Publish { Channel = channel, Event = "blob", Data = ByteString.CopyFrom(0, 255, 7), ContentType = "application/octet-stream" },
        });
        var blob = (await json.NextEventAsync())!;
        Assert.Equal("base64", (string?)blob["encoding"]);
        Assert.Equal(Convert.ToBase64String([0, 255, 7]), (string?)blob["data"]);

        // Garbage gets an error frame and the connection goes on; JSON claimed but not JSON is refused.
        await socket.SendAsync(new byte[] { 0xFF, 0xFF, 0xFF }, WebSocketMessageType.Binary, true, CancellationToken.None);
        Assert.Equal("bad_request", (await NextOfKindAsync(socket, ServerMessage.KindOneofCase.Error)).Error.Code);
        await SendAsync(socket, new ClientMessage
        {
            Id = "p2",
            Publish = new Publish { Channel = channel, Event = "msg", Data = ByteString.CopyFromUtf8("{not json"), ContentType = "application/json" },
        });
        var refused = await NextOfKindAsync(socket, ServerMessage.KindOneofCase.Error);
        Assert.Equal(("p2", "bad_request"), (refused.Id, refused.Error.Code));
        await SendAsync(socket, new ClientMessage { Id = "ping", Ping = new Ping() });
        Assert.Equal("ping", (await NextOfKindAsync(socket, ServerMessage.KindOneofCase.Pong)).Id);
    }

    [Fact]
    public async Task A_text_message_on_the_protobuf_subprotocol_closes_with_1003()
    {
        var stack = shared.Stack;
        using var socket = await ConnectProtobufAsync(stack.Gateways[0], stack.Token("proto", "room:*"));
        await ReceiveAsync(socket);
        await socket.SendAsync(Encoding.UTF8.GetBytes("""{"type":"ping"}"""), WebSocketMessageType.Text, true, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TestClient.DefaultTimeout);
        var buffer = new byte[4096];
        while ((await socket.ReceiveAsync(buffer, timeout.Token)).MessageType != WebSocketMessageType.Close)
        {
        }

        Assert.Equal((WebSocketCloseStatus)1003, socket.CloseStatus);
    }

    [Fact]
    public async Task The_json_subprotocol_is_negotiated_by_name_and_is_the_default()
    {
        var stack = shared.Stack;
        foreach (var (offered, expected) in new[] { ("realtime.v1.json", "realtime.v1.json"), ("chat.unknown", null) })
        {
            using var socket = new ClientWebSocket();
            socket.Options.AddSubProtocol(offered);
            socket.Options.SetRequestHeader("Authorization", $"Bearer {stack.Token("json", "room:*")}");
            using var timeout = new CancellationTokenSource(TestClient.DefaultTimeout);
            await socket.ConnectAsync(stack.Gateways[0].WebSocket, timeout.Token);
            Assert.Equal(expected, socket.SubProtocol);
            var buffer = new byte[4096];
            var first = await socket.ReceiveAsync(buffer, timeout.Token);
            Assert.Equal(WebSocketMessageType.Text, first.MessageType);
            Assert.Equal("connected", (string?)JsonNode.Parse(buffer.AsSpan(0, first.Count))!["type"]);
        }
    }

    [Fact]
    public async Task An_operators_disconnect_ends_every_transport_of_that_subject_and_no_one_else()
    {
        var stack = shared.Stack;
        var gateway = stack.Gateways[0];
        await using var victim = await stack.ConnectAsync(0, "kicked", "room:*");
        await using var bystander = await stack.ConnectAsync(0, "stays", "room:*");
        await using var stream = await SseClient.OpenAsync(gateway.Http, $"channels={NewChannel()}", stack.Token("kicked", "room:*"));
        await stream.NextFrameAsync("ok");

        using var http = new HttpClient();
        using var response = await http.PostAsync(new Uri(gateway.Http, "/admin/disconnect?subject=kicked"), null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, (int)(await response.Content.ReadFromJsonAsync<JsonObject>())!["closed"]!);

        Assert.Equal((WebSocketCloseStatus)4000, await victim.WaitClosedAsync(TestClient.DefaultTimeout));
        while (await stream.NextAsync() is not null)
        {
            // Drained up to the end of the stream.
        }

        Assert.Equal("pong", (string?)(await bystander.PingAsync())["type"]);
    }

    private static string NewChannel() => $"room:{Guid.NewGuid():N}";

    private async Task PublishAsync(int gateway, string channel, int n)
    {
        using var http = new HttpClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", shared.Stack.Token("publisher", "room:*"));
        using var response = await http.PostAsync(
            new Uri(shared.Stack.Gateways[gateway].Http, $"/v1/channels/{channel}/events"),
            new StringContent($$$"""{"event":"msg","data":{"n":{{{n}}}}}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task<(HttpStatusCode Status, List<JsonObject> Events, string? Cursor)> PollAsync(HttpClient http, Uri gateway, string query)
    {
        using var response = await http.GetAsync(new Uri(gateway, $"/v1/poll?{query}"));
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return (response.StatusCode, [], null);
        }

        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        return (response.StatusCode, [.. body["events"]!.AsArray().Select(e => e!.AsObject()).Where(e => (string?)e["type"] == "event")], (string?)body["cursor"]);
    }

    private static async Task<ClientWebSocket> ConnectProtobufAsync(GatewayNode gateway, string token)
    {
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol(ProtobufSubprotocol);
        socket.Options.SetRequestHeader("Authorization", $"Bearer {token}");
        using var timeout = new CancellationTokenSource(TestClient.DefaultTimeout);
        await socket.ConnectAsync(gateway.WebSocket, timeout.Token);
        return socket;
    }

    private static Task SendAsync(ClientWebSocket socket, ClientMessage message) =>
        socket.SendAsync(message.ToByteArray(), WebSocketMessageType.Binary, true, CancellationToken.None);

    private static async Task<ServerMessage> ReceiveAsync(ClientWebSocket socket)
    {
        using var timeout = new CancellationTokenSource(TestClient.DefaultTimeout);
        var buffer = new byte[64 * 1024];
        var count = 0;
        WebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(buffer.AsMemory(count).ToArraySegment(), timeout.Token);
            count += result.Count;
        }
        while (!result.EndOfMessage);

        Assert.Equal(WebSocketMessageType.Binary, result.MessageType);
        return ServerMessage.Parser.ParseFrom(buffer, 0, count);
    }

    private static async Task<ServerMessage> NextOfKindAsync(ClientWebSocket socket, ServerMessage.KindOneofCase kind)
    {
        while (true)
        {
            var message = await ReceiveAsync(socket);
            if (message.KindCase == kind)
            {
                return message;
            }
        }
    }

    /// <summary>Two gateways with a one-second SSE heartbeat, two-second long-poll hold and ten-event pages.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "transports", gateways: 2, settings: new Dictionary<string, string?>
    {
        ["Gateway__SseHeartbeatInterval"] = "00:00:01",
        ["Gateway__LongPollTimeout"] = "00:00:02",
        ["Gateway__LongPollMaxEvents"] = "10",
    });
}
