using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Realtime.Contracts.V1;
using Realtime.Contracts.V1.Client;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// Hostile input on every surface of a gateway, over real sockets: broken and oversized frames on
/// both WebSocket protocols, abusive query strings and headers on SSE and long-poll, bad bodies on
/// HTTP publish, slow handshakes, invalid gRPC calls. Each gets its documented error, status or
/// close code; after each, the gateway still runs, a client that was listening all along still
/// receives, and its log shows no error.
/// </summary>
public sealed class HostileInputTests(HostileInputTests.Pipeline shared, ITestOutputHelper output) : IClassFixture<HostileInputTests.Pipeline>
{
    private const int MaxPayloadBytes = 16 * 1024;

    // Not a power of two, as an operator may well set it (pooled buffers are powers of two).
    private const int MaxInboundMessageBytes = 60_000;
    private const int MaxBatchEvents = 10;
    private const int MaxChannels = 200;
    private const string ProtobufSubprotocol = "realtime.v1.proto";
    private static readonly TimeSpan HeadersTimeout = TimeSpan.FromSeconds(2);

    private LocalPipeline Stack => shared.Stack;

    private GatewayNode Gateway => Stack.Gateways[0];

    [Fact]
    public async Task Bad_frames_on_the_json_protocol_get_their_error_code_or_close_code()
    {
        var nested = new string('[', 64) + new string(']', 64);
        var cases = new (string Name, byte[] Message, WebSocketMessageType Type, string? Error, string? Id, int? Close)[]
        {
            ("not JSON", Utf8("hello"), WebSocketMessageType.Text, "bad_request", null, null),
            ("empty message", [], WebSocketMessageType.Text, "bad_request", null, null),
            ("JSON array", Utf8("""[{"type":"ping"}]"""), WebSocketMessageType.Text, "bad_request", null, null),
            ("JSON string", Utf8("\"ping\""), WebSocketMessageType.Text, "bad_request", null, null),
            ("truncated object", Utf8("""{"type":"ping","id":"t1" """), WebSocketMessageType.Text, "bad_request", "t1", null),
            ("trailing data", Utf8("""{"type":"ping","id":"t2"} {"type":"ping"}"""), WebSocketMessageType.Text, "bad_request", "t2", null),
            ("comment", Utf8("""{"type":"ping","id":"t3" /* hi */}"""), WebSocketMessageType.Text, "bad_request", "t3", null),
            ("type is a number", Utf8("""{"type":5,"id":"w1"}"""), WebSocketMessageType.Text, "bad_request", "w1", null),
            ("channel is a number", Utf8("""{"type":"subscribe","channel":42,"id":"w2"}"""), WebSocketMessageType.Text, "bad_request", "w2", null),
            ("id is an object", Utf8("""{"type":"ping","id":{"a":1}}"""), WebSocketMessageType.Text, "bad_request", null, null),
            ("transient is a string", Utf8("""{"type":"publish","channel":"room:a","event":"e","transient":"yes","id":"w3"}"""), WebSocketMessageType.Text, "bad_request", "w3", null),
            ("since.seq negative", Utf8("""{"type":"subscribe","channel":"room:a","since":{"epoch":"e","seq":-1},"id":"w4"}"""), WebSocketMessageType.Text, "bad_request", "w4", null),
            ("since.seq huge", Utf8("""{"type":"subscribe","channel":"room:a","since":{"epoch":"e","seq":1e400},"id":"w5"}"""), WebSocketMessageType.Text, "bad_request", "w5", null),
            ("since is an array", Utf8("""{"type":"subscribe","channel":"room:a","since":[1],"id":"w6"}"""), WebSocketMessageType.Text, "bad_request", "w6", null),
            ("id too long", Utf8($$"""{"type":"ping","id":"{{new string('i', 129)}}"}"""), WebSocketMessageType.Text, "bad_request", null, null),
            ("event too long", Utf8($$"""{"type":"publish","channel":"room:a","event":"{{new string('e', 129)}}","id":"w7"}"""), WebSocketMessageType.Text, "bad_request", "w7", null),
            ("lone surrogate escape", Utf8("""{"id":"w8","type":"subscribe","channel":"room:\uD800"}"""), WebSocketMessageType.Text, "bad_request", "w8", null),
            ("missing type", Utf8("""{"channel":"room:a","id":"m1"}"""), WebSocketMessageType.Text, "bad_request", "m1", null),
            ("missing channel", Utf8("""{"type":"unsubscribe","id":"m2"}"""), WebSocketMessageType.Text, "bad_request", "m2", null),
            ("missing event", Utf8("""{"type":"publish","channel":"room:a","data":1,"id":"m3"}"""), WebSocketMessageType.Text, "bad_request", "m3", null),
            ("missing refresh token", Utf8("""{"type":"refresh","id":"m4"}"""), WebSocketMessageType.Text, "bad_request", "m4", null),
            ("unknown type", Utf8("""{"type":"teleport","id":"u1"}"""), WebSocketMessageType.Text, "unknown_type", "u1", null),
            ("control character in channel", Utf8("""{"type":"subscribe","channel":"room:\u0000a","id":"c1"}"""), WebSocketMessageType.Text, "invalid_channel", "c1", null),
            ("channel too long", Utf8($$"""{"type":"subscribe","channel":"room:{{new string('x', 300)}}","id":"c2"}"""), WebSocketMessageType.Text, "invalid_channel", "c2", null),
            ("64-level nesting in data", Utf8($$"""{"id":"n1","type":"publish","channel":"room:a","event":"e","data":{{nested}}}"""), WebSocketMessageType.Text, "bad_request", "n1", null),
            ("64-level nesting in an unknown field", Utf8($$"""{"id":"n2","type":"ping","extra":{{nested}}}"""), WebSocketMessageType.Text, "bad_request", "n2", null),
            ("payload over MaxPayloadBytes", Utf8($$"""{"id":"p1","type":"publish","channel":"room:a","event":"e","data":"{{new string('x', MaxPayloadBytes + 1)}}"}"""), WebSocketMessageType.Text, "payload_too_large", "p1", null),
            ("invalid UTF-8 in a string", [.. "{\"type\":\"ping\",\"id\":\""u8, 0xC3, 0x28, .. "\"}"u8], WebSocketMessageType.Text, null, null, 1007),
            ("invalid UTF-8 bytes", [0xFF, 0xFE, 0xFD], WebSocketMessageType.Text, null, null, 1007),
            ("binary message", Utf8("""{"type":"ping"}"""), WebSocketMessageType.Binary, null, null, 1003),
            ("message over 64 KiB", Utf8($$"""{"type":"publish","channel":"room:a","event":"e","data":"{{new string('x', 70_000)}}"}"""), WebSocketMessageType.Text, null, null, 1009),
            ("message one byte over MaxInboundMessageBytes", Padded(MaxInboundMessageBytes + 1), WebSocketMessageType.Text, null, null, 1009),
        };

        await using var bystander = await Bystander.StartAsync(Stack);
        var logStart = LogLength();
        foreach (var (name, message, type, error, id, close) in cases)
        {
            using var socket = await ConnectAsync(subprotocol: null);
            await socket.SendAsync(message, type, true, CancellationToken.None);
            var reply = await ReceiveAsync(socket);
            output.WriteLine($"{name}: {reply}");
            if (close is { } code)
            {
                Assert.True(reply.Close == code, $"{name}: expected close {code}, got {reply}");
            }
            else
            {
                Assert.True(reply.Type == WebSocketMessageType.Text, $"{name}: expected an error frame, got {reply}");
                var frame = JsonNode.Parse(reply.Data)!.AsObject();
                Assert.True((string?)frame["type"] == "error" && (string?)frame["code"] == error, $"{name}: expected error {error}, got {frame.ToJsonString()}");
                Assert.Equal(id, (string?)frame["id"]);

                // The connection lives on.
                await socket.SendAsync(Utf8("""{"type":"ping","id":"after"}"""), WebSocketMessageType.Text, true, CancellationToken.None);
                var pong = JsonNode.Parse((await ReceiveAsync(socket)).Data)!;
                Assert.Equal(("pong", "after"), ((string?)pong["type"], (string?)pong["id"]));
            }

            await bystander.CheckAsync(name);
        }

        // Unknown fields are ignored, whatever they hold; a message of exactly the limit is taken.
        using (var tolerant = await ConnectAsync(subprotocol: null))
        {
            await tolerant.SendAsync(Utf8("""{"type":"ping","id":"x","future":{"a":[1,{"b":null}],"c":"\u00e9"},"more":true}"""), WebSocketMessageType.Text, true, CancellationToken.None);
            Assert.Equal("pong", (string?)JsonNode.Parse((await ReceiveAsync(tolerant)).Data)!["type"]);
            await tolerant.SendAsync(Padded(MaxInboundMessageBytes), WebSocketMessageType.Text, true, CancellationToken.None);
            Assert.Equal("pong", (string?)JsonNode.Parse((await ReceiveAsync(tolerant)).Data)!["type"]);
        }

        AssertNoErrorsLoggedSince(logStart);
    }

    [Fact]
    public async Task Garbage_on_the_protobuf_protocol_gets_bad_request_and_a_text_message_closes_with_1003()
    {
        // Field 99 as a start-group tag, 200 deep: past protobuf's recursion limit.
        var deepGroups = Enumerable.Repeat(new byte[] { 0x9B, 0x06 }, 200).SelectMany(b => b).ToArray();
        var cases = new (string Name, byte[] Message, WebSocketMessageType Type, string? Error, int? Close)[]
        {
            ("random bytes", [0xFF, 0xFF, 0xFF, 0x00, 0x13, 0x37], WebSocketMessageType.Binary, "bad_request", null),
            ("truncated length", [0x0A], WebSocketMessageType.Binary, "bad_request", null),
            ("length past the end", [0x0A, 0x7F, 0x61], WebSocketMessageType.Binary, "bad_request", null),
            ("nested groups past the recursion limit", deepGroups, WebSocketMessageType.Binary, "bad_request", null),
            ("invalid UTF-8 in a string field", [0x0A, 0x02, 0xFF, 0xFE, 0x52, 0x00], WebSocketMessageType.Binary, "bad_request", null),
            ("empty message", [], WebSocketMessageType.Binary, "unknown_type", null),
            ("publish without event", new ClientMessage { Publish = new Publish { Channel = "room:a" } }.ToByteArray(), WebSocketMessageType.Binary, "bad_request", null),
            ("subscribe without channel", new ClientMessage { Subscribe = new Subscribe() }.ToByteArray(), WebSocketMessageType.Binary, "bad_request", null),
            ("bad channel", new ClientMessage { Subscribe = new Subscribe { Channel = "room:\u0001" } }.ToByteArray(), WebSocketMessageType.Binary, "invalid_channel", null),
            ("payload over MaxPayloadBytes", new ClientMessage { Publish = new Publish { Channel = "room:a", Event = "e", Data = ByteString.CopyFrom(new byte[MaxPayloadBytes + 1]), ContentType = "application/octet-stream" } }.ToByteArray(), WebSocketMessageType.Binary, "payload_too_large", null),
            ("text message", Utf8("""{"type":"ping"}"""), WebSocketMessageType.Text, null, 1003),
            ("message over 64 KiB", new byte[70_000], WebSocketMessageType.Binary, null, 1009),
            ("message one byte over MaxInboundMessageBytes", new byte[MaxInboundMessageBytes + 1], WebSocketMessageType.Binary, null, 1009),
        };

        await using var bystander = await Bystander.StartAsync(Stack);
        var logStart = LogLength();
        foreach (var (name, message, type, error, close) in cases)
        {
            using var socket = await ConnectAsync(ProtobufSubprotocol);
            await socket.SendAsync(message, type, true, CancellationToken.None);
            var reply = await ReceiveAsync(socket);
            output.WriteLine($"{name}: {reply}");
            if (close is { } code)
            {
                Assert.True(reply.Close == code, $"{name}: expected close {code}, got {reply}");
            }
            else
            {
                Assert.True(reply.Type == WebSocketMessageType.Binary, $"{name}: expected an error frame, got {reply}");
                var frame = ServerMessage.Parser.ParseFrom(reply.Data);
                Assert.True(frame.KindCase == ServerMessage.KindOneofCase.Error && frame.Error.Code == error, $"{name}: expected error {error}, got {frame}");
                await socket.SendAsync(new ClientMessage { Id = "after", Ping = new Ping() }.ToByteArray(), WebSocketMessageType.Binary, true, CancellationToken.None);
                var pong = ServerMessage.Parser.ParseFrom((await ReceiveAsync(socket)).Data);
                Assert.Equal((ServerMessage.KindOneofCase.Pong, "after"), (pong.KindCase, pong.Id));
            }

            await bystander.CheckAsync(name);
        }

        AssertNoErrorsLoggedSince(logStart);
    }

    [Fact]
    public async Task Abusive_query_strings_and_headers_on_sse_and_long_poll_get_a_4xx_never_a_5xx()
    {
        // "??" grants every two-character channel: 2,500 of them fit in Kestrel's 8 KiB request line.
        var token = Stack.Token("abuser", "room:*", "??");
        const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        var many = string.Join(',', Enumerable.Range(0, 2_500).Select(i => $"{Alphabet[i / Alphabet.Length]}{Alphabet[i % Alphabet.Length]}"));
        var repeated = string.Join('&', Enumerable.Range(0, MaxChannels + 1).Select(i => $"channels=room:{i}"));
        var huge = new string('a', 20_000);
        var forged201 = Cursor(Enumerable.Range(0, MaxChannels + 1).Select(i => ($"room:{i}", "e", 1UL)));
        var cases = new (string Name, string Query, string? LastEventId, HttpStatusCode[] Status, string? Error)[]
        {
            ("2,500 channels", $"channels={many}", null, [HttpStatusCode.BadRequest], "too_many_channels"),
            ("5,000 channels", $"channels={string.Join(',', Enumerable.Range(0, 5_000).Select(i => $"room:{i}"))}", null, [HttpStatusCode.RequestUriTooLong, HttpStatusCode.RequestHeaderFieldsTooLarge, HttpStatusCode.BadRequest], null),
            ("20 KB query", $"channels=room:a&x={huge}", null, [HttpStatusCode.RequestUriTooLong, HttpStatusCode.RequestHeaderFieldsTooLarge, HttpStatusCode.BadRequest], null),
            ("201 repeated parameters", repeated, null, [HttpStatusCode.BadRequest], "too_many_channels"),
            ("only commas", $"channels={new string(',', 2_000)}", null, [HttpStatusCode.BadRequest], "bad_request"),
            ("percent-encoded NUL", "channels=room:%00", null, [HttpStatusCode.BadRequest], "invalid_channel"),
            ("percent-encoded CRLF", "channels=room:a%0D%0ASet-Cookie:x", null, [HttpStatusCode.BadRequest], "invalid_channel"),
            ("control character", "channels=room:%01", null, [HttpStatusCode.BadRequest], "invalid_channel"),
            ("invalid percent-encoding", "channels=room:%ZZ", null, [HttpStatusCode.BadRequest], "invalid_channel"),
            ("overlong UTF-8", "channels=room:%C0%AE", null, [HttpStatusCode.BadRequest], "invalid_channel"),
            ("glob in channel", "channels=room:*", null, [HttpStatusCode.BadRequest], "invalid_channel"),
            ("huge lastEventId parameter", $"channels=room:a&lastEventId={new string('A', 7_000)}", null, [HttpStatusCode.BadRequest], "bad_cursor"),
            ("15 KB Last-Event-ID", "channels=room:a", new string('A', 15_000), [HttpStatusCode.BadRequest, HttpStatusCode.RequestHeaderFieldsTooLarge], null),
            ("20 KB Last-Event-ID", "channels=room:a", huge, [HttpStatusCode.RequestHeaderFieldsTooLarge], null),
            ("Last-Event-ID not base64", "channels=room:a", "%%%", [HttpStatusCode.BadRequest], "bad_cursor"),
            ("Last-Event-ID base64 garbage", "channels=room:a", "__--__--AAAA", [HttpStatusCode.BadRequest], "bad_cursor"),
            ("Last-Event-ID of 201 channels", "channels=room:a", forged201, [HttpStatusCode.BadRequest], "bad_cursor"),
        };

        var pollCases = new (string Name, string Query, HttpStatusCode[] Status, string? Error)[]
        {
            ("2,500 channels", $"channels={many}", [HttpStatusCode.BadRequest], "too_many_channels"),
            ("201 repeated parameters", repeated, [HttpStatusCode.BadRequest], "too_many_channels"),
            ("20 KB cursor", $"cursor={huge}", [HttpStatusCode.RequestUriTooLong, HttpStatusCode.RequestHeaderFieldsTooLarge, HttpStatusCode.BadRequest], null),
            ("7 KB garbage cursor", $"cursor={new string('A', 7_000)}", [HttpStatusCode.BadRequest], "bad_cursor"),
            ("repeated cursors", $"cursor={Cursor([("room:a", "e", 1UL)])}&cursor={Cursor([("room:b", "e", 1UL)])}", [HttpStatusCode.BadRequest], "bad_cursor"),
            ("percent-encoded NUL", "channels=room:%00", [HttpStatusCode.BadRequest], "invalid_channel"),
            ("cursor of 201 channels", $"cursor={forged201}", [HttpStatusCode.BadRequest], "bad_cursor"),
            ("cursor naming a channel twice", $"cursor={Cursor([("room:a", "e", 1UL), ("room:a", "e", 2UL)])}", [HttpStatusCode.BadRequest], "bad_cursor"),
            ("cursor without epoch", $"cursor={Cursor([("room:a", string.Empty, 1UL)])}", [HttpStatusCode.BadRequest], "bad_cursor"),
            ("cursor with a NUL in a channel", $"cursor={Cursor([("room:\0", "e", 1UL)])}", [HttpStatusCode.BadRequest], "invalid_channel"),
            ("cursor with a foreign channel", $"cursor={Cursor([("secret:x", "e", 1UL)])}", [HttpStatusCode.Forbidden], "not_authorized"),
            ("cursor plus 2,500 channels", $"cursor={Cursor([("room:a", "e", 1UL)])}&channels={many}", [HttpStatusCode.BadRequest], "too_many_channels"),
        };

        await using var bystander = await Bystander.StartAsync(Stack);
        var logStart = LogLength();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        foreach (var (name, query, lastEventId, status, error) in cases)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Gateway.Http, $"/v1/sse?{query}"));
            request.Headers.Accept.ParseAdd("text/event-stream");
            request.Headers.Authorization = new("Bearer", token);
            if (lastEventId is not null)
            {
                request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
            }

            await AssertRefusedAsync(http, request, $"sse {name}", status, error);
            await bystander.CheckAsync($"sse {name}");
        }

        foreach (var (name, query, status, error) in pollCases)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Gateway.Http, $"/v1/poll?{query}"));
            request.Headers.Authorization = new("Bearer", token);
            await AssertRefusedAsync(http, request, $"poll {name}", status, error);
            await bystander.CheckAsync($"poll {name}");
        }

        // A forged cursor at a position no channel has is not an error: the client is told to resync.
        using (var forged = new HttpRequestMessage(HttpMethod.Get, new Uri(Gateway.Http, $"/v1/poll?cursor={Cursor([($"room:{Guid.NewGuid():N}", "forged", ulong.MaxValue)])}")))
        {
            forged.Headers.Authorization = new("Bearer", token);
            using var response = await http.SendAsync(forged);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
            Assert.Equal("resync", (string?)body["events"]![0]!["type"]);
        }

        // Bytes that are not allowed in a request line or header at all: Kestrel answers 400 itself.
        foreach (var (name, head) in new[]
        {
            ("raw NUL in the target", "GET /v1/sse?channels=room:\0 HTTP/1.1\r\n"),
            ("raw control character in the target", "GET /v1/poll?channels=room:\u0001 HTTP/1.1\r\n"),
            ("raw space in the target", "GET /v1/poll?channels=room: a HTTP/1.1\r\n"),
            ("NUL in a header value", "GET /v1/sse?channels=room:a HTTP/1.1\r\nLast-Event-ID: a\0b\r\n"),
        })
        {
            var answer = await RawHttpAsync(Gateway.Http, $"{head}Host: {Gateway.Http.Authority}\r\nAuthorization: Bearer {token}\r\n\r\n");
            output.WriteLine($"{name}: {answer}");
            Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
            await bystander.CheckAsync(name);
        }

        AssertNoErrorsLoggedSince(logStart);
    }

    [Fact]
    public async Task Bad_bodies_on_http_publish_and_bad_history_queries_get_a_4xx_never_a_5xx()
    {
        var nested = new string('[', 64) + new string(']', 64);
        // A null error: answered by Kestrel itself, before the application sees the request (no JSON body).
        var cases = new (string Name, string Channel, HttpContent Body, HttpStatusCode Status, string? Error)[]
        {
            ("not JSON", "room:a", Text("hello"), HttpStatusCode.BadRequest, "bad_request"),
            ("empty body", "room:a", Text(string.Empty), HttpStatusCode.BadRequest, "bad_request"),
            ("JSON array", "room:a", Text("""[{"event":"e"}]"""), HttpStatusCode.BadRequest, "bad_request"),
            ("event is an array", "room:a", Text("""{"event":["e"]}"""), HttpStatusCode.BadRequest, "bad_request"),
            ("transient is a number", "room:a", Text("""{"event":"e","transient":1}"""), HttpStatusCode.BadRequest, "bad_request"),
            ("clientMsgId is a number", "room:a", Text("""{"event":"e","clientMsgId":7}"""), HttpStatusCode.BadRequest, "bad_request"),
            ("a subscribe frame", "room:a", Text("""{"type":"subscribe","event":"e"}"""), HttpStatusCode.BadRequest, "bad_request"),
            ("an unknown type", "room:a", Text("""{"type":"teleport","event":"e"}"""), HttpStatusCode.BadRequest, "unknown_type"),
            ("invalid UTF-8", "room:a", new ByteArrayContent([.. "{\"event\":\""u8, 0xC3, 0x28, .. "\"}"u8]), HttpStatusCode.BadRequest, "bad_request"),
            ("64-level nesting", "room:a", Text($$"""{"event":"e","data":{{nested}}}"""), HttpStatusCode.BadRequest, "bad_request"),
            ("form body", "room:a", new FormUrlEncodedContent([new("event", "e")]), HttpStatusCode.BadRequest, "bad_request"),
            ("payload over MaxPayloadBytes", "room:a", Text($$"""{"event":"e","data":"{{new string('x', MaxPayloadBytes + 1)}}"}"""), HttpStatusCode.RequestEntityTooLarge, "payload_too_large"),
            ("1 MiB body", "room:a", new ByteArrayContent(new byte[1024 * 1024]), HttpStatusCode.RequestEntityTooLarge, "payload_too_large"),
            ("1 MiB chunked body", "room:a", new StreamContent(new ChunkedStream(1024 * 1024)), HttpStatusCode.RequestEntityTooLarge, "payload_too_large"),
            ("NUL in the channel", "room:%00", Text("""{"event":"e"}"""), HttpStatusCode.BadRequest, null),
            ("control character in the channel", "room:%01", Text("""{"event":"e"}"""), HttpStatusCode.BadRequest, "invalid_channel"),
            ("encoded slash in the channel", "room:a%2F%2E%2E", Text("""{"event":"e"}"""), HttpStatusCode.BadRequest, "invalid_channel"),
            ("300-character channel", $"room:{new string('x', 300)}", Text("""{"event":"e"}"""), HttpStatusCode.BadRequest, "invalid_channel"),
        };

        await using var bystander = await Bystander.StartAsync(Stack);
        var logStart = LogLength();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", Stack.Token("poster", "room:*"));
        var channel = $"room:{Guid.NewGuid():N}";
        foreach (var (name, target, body, status, error) in cases)
        {
            using (body)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Gateway.Http, $"/v1/channels/{(target == "room:a" ? channel : target)}/events")) { Content = body };
                await AssertRefusedAsync(http, request, $"publish {name}", [status], error);
            }

            await bystander.CheckAsync($"publish {name}");
        }

        foreach (var query in new[] { "since=-1", "since=abc", "since=99999999999999999999999", "since=1&since=2", "limit=0", "limit=1001", "limit=-5", "epoch=a&epoch=b" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Gateway.Http, $"/v1/channels/{channel}/events?{query}"));
            await AssertRefusedAsync(http, request, $"history {query}", [HttpStatusCode.BadRequest], "bad_request");
            await bystander.CheckAsync($"history {query}");
        }

        // None of the refused publishes reached the channel.
        var history = await http.GetFromJsonAsync<JsonObject>(new Uri(Gateway.Http, $"/v1/channels/{channel}/events?since=0"));
        Assert.Empty(history!["events"]!.AsArray());
        AssertNoErrorsLoggedSince(logStart);
    }

    [Fact]
    public async Task A_client_that_drips_its_request_headers_is_dropped_within_the_headers_timeout()
    {
        await using var bystander = await Bystander.StartAsync(Stack);
        var logStart = LogLength();
        // HTTP/2: the preface, settings and a HEADERS frame that does not end the header block go
        // at once; then a CONTINUATION frame trickles in (Kestrel's headers timeout covers header
        // blocks; before the first frame its keep-alive timeout applies).
        byte[] http2Start =
        [
            .. "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8,
            0, 0, 0, 0x4, 0, 0, 0, 0, 0,
            0, 0, 1, 0x1, 0, 0, 0, 0, 1, 0x83,
        ];
        byte[] continuation = [0, 0, 100, 0x9, 0, 0, 0, 0, 1, .. Enumerable.Repeat((byte)0x83, 100)];
        var cases = new (string Name, Uri Endpoint, byte[] Start, byte[] Drip)[]
        {
            ("HTTP port", Gateway.Http, [], Encoding.ASCII.GetBytes($"GET /ws HTTP/1.1\r\nHost: {Gateway.Http.Authority}\r\nUpgrade: websocket\r\nX-Slow: {new string('a', 100)}")),
            ("gRPC port", Gateway.Grpc, http2Start, continuation),
        };

        foreach (var (name, endpoint, start, drip) in cases)
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(endpoint.Host, endpoint.Port);
            var stream = tcp.GetStream();
            var clock = Stopwatch.StartNew();
            await stream.WriteAsync(start);
            using var stop = new CancellationTokenSource();
            var dripping = Task.Run(async () =>
            {
                try
                {
                    foreach (var b in drip)
                    {
                        await stream.WriteAsync(new[] { b }, stop.Token);
                        await Task.Delay(TimeSpan.FromSeconds(1), stop.Token);
                    }
                }
                catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
                {
                    // Dropped by the server, or the test is done.
                }
            });

            var closed = await WaitForCloseAsync(stream, TimeSpan.FromSeconds(10));
            var elapsed = clock.Elapsed;
            await stop.CancelAsync();
            await dripping;
            output.WriteLine($"{name}: closed={closed} after {elapsed.TotalSeconds:F1} s");
            Assert.True(closed, $"{name}: the server still held a connection dripping its headers after {elapsed.TotalSeconds:F1} s");
            // Not refused at once as malformed: it was the timeout that ended it.
            Assert.True(elapsed >= HeadersTimeout - TimeSpan.FromMilliseconds(500), $"{name}: closed after {elapsed.TotalSeconds:F1} s, before the headers timeout");
            await bystander.CheckAsync(name);
        }

        AssertNoErrorsLoggedSince(logStart);
    }

    [Fact]
    public async Task Invalid_grpc_requests_get_invalid_argument_or_resource_exhausted()
    {
        var client = Stack.PublisherClient(0);
        var auth = Stack.ServiceAuth("room:*");
        static PublishRequest Valid(string channel) => new() { Channel = channel, EventType = "e", Payload = ByteString.CopyFromUtf8("{}") };
        PublishBatchRequest Batch(int count, Func<int, PublishRequest> make)
        {
            var batch = new PublishBatchRequest();
            batch.Events.AddRange(Enumerable.Range(0, count).Select(make));
            return batch;
        }

        var channel = $"room:{Guid.NewGuid():N}";
        var cases = new (string Name, Func<Task> Call, StatusCode Status)[]
        {
            ("empty channel", () => client.PublishAsync(Valid(string.Empty), auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("NUL in channel", () => client.PublishAsync(Valid("room:\0"), auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("glob channel", () => client.PublishAsync(Valid("room:*"), auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("300-character channel", () => client.PublishAsync(Valid($"room:{new string('x', 300)}"), auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("empty event_type", () => client.PublishAsync(new PublishRequest { Channel = channel, Payload = ByteString.CopyFromUtf8("{}") }, auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("event_type too long", () => client.PublishAsync(new PublishRequest { Channel = channel, EventType = new string('e', 129) }, auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("JSON content type, not JSON", () => client.PublishAsync(new PublishRequest { Channel = channel, EventType = "e", Payload = ByteString.CopyFrom(0xFF, 0x00) }, auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("payload over MaxPayloadBytes", () => client.PublishAsync(new PublishRequest { Channel = channel, EventType = "e", Payload = ByteString.CopyFrom(new byte[MaxPayloadBytes + 1]), ContentType = "application/octet-stream" }, auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.ResourceExhausted),
            ("message over the receive limit", () => client.PublishAsync(new PublishRequest { Channel = channel, EventType = "e", Payload = ByteString.CopyFrom(new byte[17 * 1024 * 1024]), ContentType = "application/octet-stream" }, auth, DateTime.UtcNow.AddSeconds(30)).ResponseAsync, StatusCode.ResourceExhausted),
            ("empty batch", () => client.PublishBatchAsync(new PublishBatchRequest(), auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("batch over MaxBatchEvents", () => client.PublishBatchAsync(Batch(MaxBatchEvents + 1, _ => Valid(channel)), auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.ResourceExhausted),
            ("batch with one bad channel", () => client.PublishBatchAsync(Batch(3, i => Valid(i == 2 ? "room bad" : channel)), auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("batch with one oversized payload", () => client.PublishBatchAsync(Batch(3, i => i == 1 ? new PublishRequest { Channel = channel, EventType = "e", Payload = ByteString.CopyFrom(new byte[MaxPayloadBytes + 1]), ContentType = "application/octet-stream" } : Valid(channel)), auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.ResourceExhausted),
            ("batch with a key twice", () => client.PublishBatchAsync(Batch(2, _ => new PublishRequest(Valid(channel)) { IdempotencyKey = "k" }), auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("history of a bad channel", () => new Channels.ChannelsClient(Stack.GrpcChannelTo(0)).HistoryAsync(new HistoryRequest { Channel = "room:\u0001" }, auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
            ("history limit too large", () => new Channels.ChannelsClient(Stack.GrpcChannelTo(0)).HistoryAsync(new HistoryRequest { Channel = channel, Limit = 5_000 }, auth, DateTime.UtcNow.AddSeconds(10)).ResponseAsync, StatusCode.InvalidArgument),
        };

        await using var bystander = await Bystander.StartAsync(Stack);
        var logStart = LogLength();
        foreach (var (name, call, status) in cases)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(call);
            output.WriteLine($"{name}: {refused.StatusCode} {refused.Status.Detail}");
            Assert.True(status == refused.StatusCode, $"{name}: expected {status}, got {refused.StatusCode} ({refused.Status.Detail})");
            await bystander.CheckAsync(name);
        }

        // Nothing of the refused calls reached the channel.
        var history = await new Channels.ChannelsClient(Stack.GrpcChannelTo(0)).HistoryAsync(new HistoryRequest { Channel = channel }, auth, DateTime.UtcNow.AddSeconds(10));
        Assert.Empty(history.Events);
        AssertNoErrorsLoggedSince(logStart);
    }

    [Fact]
    public async Task Bytes_that_are_not_a_grpc_request_message_are_refused_without_an_error_in_the_log()
    {
        var invoker = Stack.GrpcChannelTo(0).CreateCallInvoker();
        var raw = Marshallers.Create<byte[]>(b => b, b => b);
        var publish = new Method<byte[], byte[]>(MethodType.Unary, "realtime.v1.Publisher", "Publish", raw, raw);
        var cases = new (string Name, byte[] Request)[]
        {
            ("random bytes", [0xFF, 0xFF, 0xFF, 0x00, 0x13, 0x37]),
            ("length past the end", [0x0A, 0x7F, 0x61]),
            ("invalid UTF-8 in channel", [0x0A, 0x02, 0xFF, 0xFE, 0x12, 0x01, 0x65]),
        };

        await using var bystander = await Bystander.StartAsync(Stack);
        var logStart = LogLength();
        foreach (var (name, request) in cases)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(() =>
                invoker.AsyncUnaryCall(publish, null, new CallOptions(Stack.ServiceAuth("room:*"), DateTime.UtcNow.AddSeconds(10)), request).ResponseAsync);
            output.WriteLine($"{name}: {refused.StatusCode} {refused.Status.Detail}");
            Assert.True(refused.StatusCode == StatusCode.InvalidArgument, $"{name}: expected InvalidArgument, got {refused.StatusCode} ({refused.Status.Detail})");
            await bystander.CheckAsync(name);
        }

        // On a PublishStream, the event before the bad bytes is answered, then the call ends.
        var stream = new Method<byte[], byte[]>(MethodType.DuplexStreaming, "realtime.v1.Publisher", "PublishStream", raw, raw);
        using (var call = invoker.AsyncDuplexStreamingCall(stream, null, new CallOptions(Stack.ServiceAuth("room:*"), DateTime.UtcNow.AddSeconds(10))))
        {
            var valid = new PublishRequest { Channel = $"room:{Guid.NewGuid():N}", EventType = "e", Payload = ByteString.CopyFromUtf8("1") };
            await call.RequestStream.WriteAsync(valid.ToByteArray());
            await call.RequestStream.WriteAsync([0xFF, 0xFF, 0xFF, 0x00, 0x13, 0x37]);
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal(PublishStreamResponse.OutcomeOneofCase.Result, PublishStreamResponse.Parser.ParseFrom(call.ResponseStream.Current).OutcomeCase);
            var ended = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
            output.WriteLine($"stream with random bytes: {ended.StatusCode} {ended.Status.Detail}");
            Assert.Equal(StatusCode.InvalidArgument, ended.StatusCode);
            await bystander.CheckAsync("stream with random bytes");
        }

        // Valid calls still reach the services, and server reflection still lists them.
        var ok = await Stack.PublisherClient(0).PublishAsync(
            new PublishRequest { Channel = $"room:{Guid.NewGuid():N}", EventType = "e", Payload = ByteString.CopyFromUtf8("1") },
            Stack.ServiceAuth("room:*"),
            deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.False(string.IsNullOrEmpty(ok.EventId));
        var reflection = new Method<byte[], byte[]>(MethodType.DuplexStreaming, "grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", raw, raw);
        using (var listing = invoker.AsyncDuplexStreamingCall(reflection, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10))))
        {
            // ServerReflectionRequest { list_services = "" } (field 7).
            await listing.RequestStream.WriteAsync([0x3A, 0x00]);
            await listing.RequestStream.CompleteAsync();
            Assert.True(await listing.ResponseStream.MoveNext(CancellationToken.None));
            var services = Encoding.UTF8.GetString(listing.ResponseStream.Current);
            Assert.Contains("realtime.v1.Publisher", services, StringComparison.Ordinal);
            Assert.Contains("realtime.v1.Channels", services, StringComparison.Ordinal);
            Assert.Contains("realtime.v1.Sessions", services, StringComparison.Ordinal);
        }

        AssertNoErrorsLoggedSince(logStart);
    }

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>A ping of exactly <paramref name="length"/> bytes, padded with an unknown field.</summary>
    private static byte[] Padded(int length)
    {
        const string Start = "{\"type\":\"ping\",\"pad\":\"", End = "\"}";
        return Utf8(Start + new string('x', length - Start.Length - End.Length) + End);
    }

    private static StringContent Text(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>A stream cursor as the gateway encodes it (base64url of a StreamCursor), for forging.</summary>
    private static string Cursor(IEnumerable<(string Channel, string Epoch, ulong Seq)> positions)
    {
        var cursor = new StreamCursor();
        foreach (var (channel, epoch, seq) in positions)
        {
            cursor.Channels.Add(new Realtime.Contracts.V1.Client.ChannelCursor { Channel = channel, Position = new Position { Epoch = epoch, Seq = seq } });
        }

        return System.Buffers.Text.Base64Url.EncodeToString(cursor.ToByteArray());
    }

    private async Task<ClientWebSocket> ConnectAsync(string? subprotocol)
    {
        var socket = new ClientWebSocket();
        if (subprotocol is not null)
        {
            socket.Options.AddSubProtocol(subprotocol);
        }

        socket.Options.SetRequestHeader("Authorization", $"Bearer {Stack.Token("hostile", "room:*")}");
        using var timeout = new CancellationTokenSource(TestClient.DefaultTimeout);
        await socket.ConnectAsync(Gateway.WebSocket, timeout.Token);
        var connected = await ReceiveAsync(socket);
        Assert.Null(connected.Close);
        return socket;
    }

    /// <summary>The next whole message, or the close status when the server closed instead.</summary>
    private static async Task<Received> ReceiveAsync(ClientWebSocket socket)
    {
        using var timeout = new CancellationTokenSource(TestClient.DefaultTimeout);
        var buffer = new byte[256 * 1024];
        var count = 0;
        try
        {
            WebSocketReceiveResult result;
            do
            {
                result = await socket.ReceiveAsync(buffer.AsMemory(count).ToArraySegment(), timeout.Token);
                count += result.Count;
            }
            while (!result.EndOfMessage);

            return result.MessageType == WebSocketMessageType.Close
                ? new Received(result.MessageType, [], (int?)socket.CloseStatus)
                : new Received(result.MessageType, buffer[..count], null);
        }
        catch (WebSocketException e)
        {
            // The server closed and cut the connection before the close frame was read.
            return new Received(WebSocketMessageType.Close, [], (int?)socket.CloseStatus ?? -1, e.Message);
        }
    }

    private async Task AssertRefusedAsync(HttpClient http, HttpRequestMessage request, string name, HttpStatusCode[] statuses, string? error)
    {
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var text = response.StatusCode == HttpStatusCode.OK ? "(stream)" : await response.Content.ReadAsStringAsync();
        output.WriteLine($"{name}: {(int)response.StatusCode} {text[..Math.Min(text.Length, 200)]}");
        Assert.True(statuses.Contains(response.StatusCode), $"{name}: expected {string.Join(" or ", statuses.Select(s => (int)s))}, got {(int)response.StatusCode} {text}");
        if (error is not null)
        {
            Assert.Equal(error, (string?)JsonNode.Parse(text)!["error"]);
        }
    }

    /// <summary>Sends raw bytes as an HTTP/1.1 request; returns the head of the answer.</summary>
    private static async Task<string> RawHttpAsync(Uri endpoint, string request)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint.Host, endpoint.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(request));
        try
        {
            return await RawWebSocket.ReadTextAsync(stream, "\r\n\r\n", TestClient.DefaultTimeout);
        }
        catch (IOException e)
        {
            return $"connection cut: {e.Message}";
        }
    }

    /// <summary>Reads until the server closes the connection; false if it is still open after <paramref name="timeout"/>.</summary>
    private static async Task<bool> WaitForCloseAsync(NetworkStream stream, TimeSpan timeout)
    {
        using var cancellation = new CancellationTokenSource(timeout);
        var buffer = new byte[4096];
        try
        {
            while (await stream.ReadAsync(buffer, cancellation.Token) > 0)
            {
                // A timeout response (408) or a GOAWAY may come first.
            }

            return true;
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private long LogLength() => new FileInfo(Gateway.Process.LogPath).Length;

    private void AssertNoErrorsLoggedSince(long offset)
    {
        using var file = new FileStream(Gateway.Process.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        file.Seek(offset, SeekOrigin.Begin);
        using var reader = new StreamReader(file);
        var errors = reader.ReadToEnd().Split('\n')
            .Where(l => l.Contains("fail:", StringComparison.Ordinal) || l.Contains("crit:", StringComparison.Ordinal) || l.Contains("Unhandled exception", StringComparison.Ordinal))
            .ToList();
        Assert.False(errors.Count > 0, $"the gateway logged errors:\n{string.Join('\n', errors)}");
        Assert.False(Gateway.Process.HasExited, "the gateway exited");
    }

    private sealed record Received(WebSocketMessageType Type, byte[] Data, int? Close, string? Error = null)
    {
        public override string ToString() =>
            Close is { } code ? $"close {code}{(Error is null ? string.Empty : $" ({Error})")}"
            : Type == WebSocketMessageType.Text ? Encoding.UTF8.GetString(Data) : Convert.ToHexString(Data);
    }

    /// <summary>
    /// Well-behaved clients on the gateway under attack: one subscribed all along, one that
    /// publishes to it. <see cref="CheckAsync"/> proves the gateway runs, still delivers to them,
    /// and still accepts new clients.
    /// </summary>
    private sealed class Bystander : IAsyncDisposable
    {
        private readonly LocalPipeline _stack;
        private readonly TestClient _listener;
        private readonly TestClient _publisher;
        private readonly string _channel;

        private Bystander(LocalPipeline stack, TestClient listener, TestClient publisher, string channel)
        {
            _stack = stack;
            _listener = listener;
            _publisher = publisher;
            _channel = channel;
        }

        public static async Task<Bystander> StartAsync(LocalPipeline stack)
        {
            var channel = $"room:{Guid.NewGuid():N}";
            var listener = await stack.ConnectAsync(0, "bystander", "room:*");
            Assert.Equal("ok", (string?)(await listener.SubscribeAsync(channel))["type"]);
            var publisher = await stack.ConnectAsync(0, "neighbour", "room:*");
            return new Bystander(stack, listener, publisher, channel);
        }

        public async Task CheckAsync(string after)
        {
            var gateway = _stack.Gateways[0];
            Assert.False(gateway.Process.HasExited, $"the gateway exited after '{after}'");
            Assert.True(_listener.CloseStatus is null, $"the bystander was closed after '{after}'");
            var ack = await _publisher.PublishAsync(_channel, after);
            Assert.True((string?)ack["type"] == "ack", $"after '{after}': {ack.ToJsonString()}");
            var received = await _listener.NextEventAsync();
            Assert.Equal(after, (string?)received["data"]);

            // New clients still get in and are served.
            await using var newcomer = await _stack.ConnectAsync(0, "newcomer", "room:*");
            Assert.Equal("ok", (string?)(await newcomer.SubscribeAsync($"room:{Guid.NewGuid():N}"))["type"]);
        }

        public async ValueTask DisposeAsync()
        {
            await _listener.DisposeAsync();
            await _publisher.DisposeAsync();
        }
    }

    /// <summary>A body of zeros of a given length, sent without Content-Length (chunked).</summary>
    private sealed class ChunkedStream(int length) : Stream
    {
        private int _remaining = length;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(count, _remaining);
            Array.Clear(buffer, offset, n);
            _remaining -= n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>One gateway with a two-second request-headers timeout, a 60,000-byte message and 16 KiB payload limit, and batches of at most ten events.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "hostile", gateways: 1, settings: new Dictionary<string, string?>
    {
        ["Gateway__RequestHeadersTimeout"] = "00:00:02",
        ["Gateway__MaxInboundMessageBytes"] = MaxInboundMessageBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Gateway__MaxPayloadBytes"] = MaxPayloadBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Gateway__MaxBatchEvents"] = MaxBatchEvents.ToString(System.Globalization.CultureInfo.InvariantCulture),
    });
}
