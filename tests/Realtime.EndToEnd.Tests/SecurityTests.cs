using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// The gateway's edge over real sockets: which tokens get in (and how they may travel), which
/// browser origins, what happens as a token expires, and that no token ever reaches a log line.
/// </summary>
public sealed class SecurityTests(SecurityTests.Pipeline shared, ITestOutputHelper output) : IClassFixture<SecurityTests.Pipeline>
{
    private const string AllowedOrigin = "http://app.example";
    private static readonly string[] AnyRoom = ["room:*"];

    private LocalPipeline Stack => shared.Stack;

    [Fact]
    public async Task Bad_tokens_are_refused_at_the_handshake_and_say_why()
    {
        var now = DateTime.UtcNow;
        var (stranger, _) = NewRsa("nope");
        var cases = new (string Name, string Token, string Reason)[]
        {
            ("expired", Stack.TokenWith("eve", ["room:*"], TimeSpan.FromMinutes(1), notBefore: now.AddHours(-1)), "Expired"),
            ("not yet valid", Stack.TokenWith("eve", ["room:*"], TimeSpan.FromMinutes(5), notBefore: now.AddHours(1)), "NotYetValid"),
            ("wrong issuer", Stack.TokenWith("eve", ["room:*"], TimeSpan.FromMinutes(5), issuer: "someone-else"), "InvalidIssuer"),
            ("wrong audience", Stack.TokenWith("eve", ["room:*"], TimeSpan.FromMinutes(5), audience: "another-service"), "InvalidAudience"),
            ("wrong signature", Stack.TokenWith("eve", ["room:*"], TimeSpan.FromMinutes(5), key: "a-different-key-that-is-long-enough-0123"), "InvalidSignature"),
            ("alg none", Unsigned("eve"), "Malformed|InvalidSignature|Invalid"),
            ("unknown kid", Mint(stranger, SecurityAlgorithms.RsaSha256, "eve"), "UnknownKey"),
            ("not a JWT", "abc.def.ghi", "Malformed"),
        };

        foreach (var (name, token, reason) in cases)
        {
            var status = await TestClient.HandshakeStatusAsync(Stack.Gateways[0].WebSocket, $"Bearer {token}");
            using var http = new HttpClient();
            http.DefaultRequestHeaders.Authorization = new("Bearer", token);
            using var poll = await http.GetAsync(new Uri(Stack.Gateways[0].Http, "/v1/poll?channels=room:1"));
            var body = await poll.Content.ReadFromJsonAsync<JsonObject>();
            output.WriteLine($"{name}: {(int)status} {body}");
            Assert.Equal(HttpStatusCode.Unauthorized, status);
            Assert.Equal(HttpStatusCode.Unauthorized, poll.StatusCode);
            Assert.Matches($"^({reason})$", (string?)body!["message"]);
        }

        // The configured RS256 key by its kid gets in.
        Assert.Equal(HttpStatusCode.SwitchingProtocols, await TestClient.HandshakeStatusAsync(Stack.Gateways[0].WebSocket, $"Bearer {Mint(shared.RsaKey, SecurityAlgorithms.RsaSha256, "rita")}"));
    }

    [Fact]
    public async Task A_browser_may_carry_its_token_in_a_subprotocol_which_is_never_echoed()
    {
        using var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("realtime.v1.json");
        socket.Options.AddSubProtocol("realtime.token." + Stack.Token("sam", "room:*"));
        using var timeout = new CancellationTokenSource(TestClient.DefaultTimeout);
        await socket.ConnectAsync(Stack.Gateways[0].WebSocket, timeout.Token);
        Assert.Equal("realtime.v1.json", socket.SubProtocol);
    }

    [Fact]
    public async Task Browser_origins_other_than_the_allowed_ones_are_refused_before_the_upgrade()
    {
        var gateway = Stack.Gateways[0];
        var token = Stack.Token("olga", "room:*");
        var ownOrigin = gateway.Http.GetLeftPart(UriPartial.Authority);
        foreach (var (origin, expected) in new (string?, HttpStatusCode)[]
        {
            ("https://evil.example", HttpStatusCode.Forbidden),
            ("null", HttpStatusCode.Forbidden),
            (AllowedOrigin, HttpStatusCode.SwitchingProtocols),
            (ownOrigin, HttpStatusCode.SwitchingProtocols),
            (null, HttpStatusCode.SwitchingProtocols),
        })
        {
            using var socket = new ClientWebSocket();
            socket.Options.CollectHttpResponseDetails = true;
            socket.Options.SetRequestHeader("Authorization", $"Bearer {token}");
            if (origin is not null)
            {
                socket.Options.SetRequestHeader("Origin", origin);
            }

            using var timeout = new CancellationTokenSource(TestClient.DefaultTimeout);
            try
            {
                await socket.ConnectAsync(gateway.WebSocket, timeout.Token);
            }
            catch (WebSocketException)
            {
                // The status says why.
            }

            Assert.True(expected == socket.HttpStatusCode, $"origin {origin ?? "(none)"}: {socket.HttpStatusCode}");
        }

        // SSE, long-poll and HTTP publish: the same rule, and CORS headers for the allowed origin.
        using var http = new HttpClient();
        foreach (var path in new[] { "/v1/sse?channels=room:o", "/v1/poll?channels=room:o" })
        {
            using var evil = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway.Http, path));
            evil.Headers.Add("Origin", "https://evil.example");
            evil.Headers.Authorization = new("Bearer", token);
            using var refused = await http.SendAsync(evil, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Equal("origin_not_allowed", (string?)(await refused.Content.ReadFromJsonAsync<JsonObject>())!["error"]);
        }

        using var allowed = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway.Http, "/v1/poll?channels=room:o"));
        allowed.Headers.Add("Origin", AllowedOrigin);
        allowed.Headers.Authorization = new("Bearer", token);
        using var answered = await http.SendAsync(allowed);
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        Assert.Equal(AllowedOrigin, answered.Headers.GetValues("Access-Control-Allow-Origin").Single());

        using var preflight = new HttpRequestMessage(HttpMethod.Options, new Uri(gateway.Http, "/v1/channels/room:o/events"));
        preflight.Headers.Add("Origin", AllowedOrigin);
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization, content-type");
        using var preflightAnswer = await http.SendAsync(preflight);
        Assert.Equal(HttpStatusCode.NoContent, preflightAnswer.StatusCode);
        Assert.Contains("Authorization", preflightAnswer.Headers.GetValues("Access-Control-Allow-Headers").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_is_warned_before_its_token_expires_and_a_refresh_keeps_it_connected()
    {
        var channel = $"room:{Guid.NewGuid():N}";
        // Lifetime 6 s, warning 4 s before: auth.expiring arrives about 2 s in.
        await using var client = await TestClient.ConnectAsync(Stack.Gateways[0].WebSocket, Stack.TokenWith("rex", ["room:*"], TimeSpan.FromSeconds(6)));
        await client.SubscribeAsync(channel);
        var warning = await WaitForFrameAsync(client, "auth.expiring", TimeSpan.FromSeconds(10));
        Assert.InRange((int)warning["in"]!, 0, 4);

        // A token for someone else is refused; the connection goes on with its own.
        var foreign = await client.RequestAsync(new JsonObject { ["type"] = "refresh", ["id"] = "f", ["token"] = Stack.Token("mallory", "room:*") });
        Assert.Equal("refresh_refused", (string?)foreign["code"]);

        var refreshed = await client.RequestAsync(new JsonObject { ["type"] = "refresh", ["id"] = "r", ["token"] = Stack.Token("rex", "room:*") });
        Assert.Equal("ok", (string?)refreshed["type"]);

        // Past the first token's expiry, still connected and still receiving.
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Null(client.CloseStatus);
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        await publisher.PublishAsync(channel, 1);
        Assert.Equal(1, (int)(await client.NextEventAsync())["data"]!);
    }

    [Fact]
    public async Task A_client_that_does_not_refresh_is_closed_at_expiry_with_4001()
    {
        var started = DateTime.UtcNow;
        await using var client = await TestClient.ConnectAsync(Stack.Gateways[0].WebSocket, Stack.TokenWith("sid", ["room:*"], TimeSpan.FromSeconds(5)));
        Assert.Equal((WebSocketCloseStatus)4001, await client.WaitClosedAsync(TimeSpan.FromSeconds(20)));
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromSeconds(3), "closed long before the token expired");
    }

    [Fact]
    public async Task An_sse_stream_ends_when_its_token_expires_and_a_held_poll_is_not_held_past_it()
    {
        var started = DateTime.UtcNow;
        await using var stream = await SseClient.OpenAsync(Stack.Gateways[0].Http, "channels=room:expiring", Stack.TokenWith("sue", ["room:*"], TimeSpan.FromSeconds(4)));
        await stream.NextFrameAsync("ok");
        while (await stream.NextAsync(TimeSpan.FromSeconds(15)) is not null)
        {
            // Heartbeats, if any, until the server ends the stream.
        }

        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(15));

        // A poll is answered (204) at its token's expiry, well before the 25 s hold.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", Stack.TokenWith("sue", ["room:*"], TimeSpan.FromSeconds(4)));
        var start = JsonNode.Parse(await http.GetStringAsync(new Uri(Stack.Gateways[0].Http, "/v1/poll?channels=room:expiring")))!;
        var polled = DateTime.UtcNow;
        using var held = await http.GetAsync(new Uri(Stack.Gateways[0].Http, $"/v1/poll?cursor={(string?)start["cursor"]}"));
        Assert.Equal(HttpStatusCode.NoContent, held.StatusCode);
        Assert.True(DateTime.UtcNow - polled < TimeSpan.FromSeconds(10), "held past the token's expiry");
    }

    [Fact]
    public async Task A_refresh_with_narrower_grants_ends_the_subscriptions_it_no_longer_covers()
    {
        await using var client = await Stack.ConnectAsync(0, "nina", "room:*", "team:*");
        var room = $"room:{Guid.NewGuid():N}";
        var org = $"team:{Guid.NewGuid():N}";
        await client.SubscribeAsync(room);
        await client.SubscribeAsync(org);
        Assert.Equal("ok", (string?)(await client.RequestAsync(new JsonObject { ["type"] = "refresh", ["id"] = "r", ["token"] = Stack.Token("nina", "room:*") }))["type"]);
        var revoked = await WaitForFrameAsync(client, "channel.access.revoked", TestClient.DefaultTimeout);
        Assert.Equal(org, (string?)revoked["channel"]);
        Assert.Equal("not_subscribed", (string?)(await client.UnsubscribeAsync(org))["code"]);
        Assert.Equal("ok", (string?)(await client.UnsubscribeAsync(room))["type"]);
    }

    [Fact]
    public async Task Channels_of_a_callback_namespace_are_decided_by_the_applications_backend_and_fail_closed()
    {
        await using var client = await Stack.ConnectAsync(0, "carol", "room:*");
        // The token grants no org: channel; the backend does (org:acme) or does not (org:other).
        Assert.Equal("ok", (string?)(await client.SubscribeAsync("org:acme"))["type"]);
        Assert.Equal("not_authorized", (string?)(await client.SubscribeAsync("org:other"))["code"]);
        Assert.Contains(shared.CallbackQuestions, q => (string?)q["subject"] == "carol" && (string?)q["channel"] == "org:acme" && (string?)q["action"] == "subscribe");

        // The backend stops answering: nothing new is allowed (answers already cached stay valid for their TTL).
        shared.StopCallback();
        Assert.Equal("not_authorized", (string?)(await client.PublishAsync("org:acme2", 1))["code"]);
    }

    [Fact]
    public async Task No_token_reaches_a_log_line()
    {
        var gateway = Stack.Gateways[0];
        var tokens = new List<string>
        {
            Stack.Token("lara", "room:*"),
            Stack.TokenWith("lara", ["room:*"], TimeSpan.FromMinutes(5)),
            Stack.TokenWith("lara", ["room:*"], TimeSpan.FromHours(2)),
            Stack.TokenWith("lara", ["room:*"], TimeSpan.FromMinutes(1), notBefore: DateTime.UtcNow.AddHours(-1)),
            Stack.TokenWith("lara", ["room:*"], TimeSpan.FromMinutes(5), key: "a-different-key-that-is-long-enough-0123"),
        };
        using var http = new HttpClient();
        foreach (var token in tokens)
        {
            await TestClient.HandshakeStatusAsync(gateway.WebSocket, $"Bearer {token}");
            await TestClient.HandshakeStatusAsync(gateway.WebSocket, null, $"access_token={token}");
            using var sse = await http.GetAsync(new Uri(gateway.Http, $"/v1/poll?channels=room:l&access_token={token}"));
            using var post = await http.PostAsync(new Uri(gateway.Http, $"/v1/channels/room:l/events?access_token={token}"), new StringContent("""{"event":"e"}"""));
            await using var client = await ConnectOrNullAsync(gateway.WebSocket, token);
            if (client is not null)
            {
                await client.RequestAsync(new JsonObject { ["type"] = "refresh", ["id"] = "r", ["token"] = token });
                await client.RequestAsync(new JsonObject { ["type"] = "refresh", ["id"] = "x", ["token"] = token + "x" });
            }
        }

        var log = await File.ReadAllTextAsync(gateway.Process.LogPath);
        Assert.NotEmpty(log);
        foreach (var token in tokens)
        {
            // Not the token, and not its signature (the part that makes it usable) on its own.
            Assert.DoesNotContain(token, log, StringComparison.Ordinal);
            Assert.DoesNotContain(token[(token.LastIndexOf('.') + 1)..], log, StringComparison.Ordinal);
        }
    }

    private static async Task<TestClient?> ConnectOrNullAsync(Uri uri, string token)
    {
        try
        {
            return await TestClient.ConnectAsync(uri, token);
        }
        catch (WebSocketException)
        {
            return null;
        }
    }

    private static async Task<JsonObject> WaitForFrameAsync(TestClient client, string type, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            while (client.Other.TryDequeue(out var frame))
            {
                if ((string?)frame["type"] == type)
                {
                    return frame;
                }
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"no '{type}' frame within {timeout}");
    }

    private static string Unsigned(string subject)
    {
        static string B64(string s) => Base64UrlEncoder.Encode(s);
        var exp = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds();
        return $"{B64("""{"alg":"none","typ":"JWT"}""")}.{B64($$"""{"sub":"{{subject}}","channels":["*"],"exp":{{exp}},"iss":"{{LocalPipeline.Issuer}}","aud":"{{LocalPipeline.Audience}}"}""")}.";
    }

    internal static (RsaSecurityKey Private, string PublicPem) NewRsa(string kid)
    {
        var rsa = RSA.Create(2048);
        return (new RsaSecurityKey(rsa) { KeyId = kid }, rsa.ExportSubjectPublicKeyInfoPem());
    }

    internal static string Mint(SecurityKey key, string algorithm, string subject)
    {
        var now = DateTime.UtcNow;
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object> { ["sub"] = subject, ["channels"] = AnyRoom },
            Issuer = LocalPipeline.Issuer,
            Audience = LocalPipeline.Audience,
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddMinutes(5),
            SigningCredentials = new SigningCredentials(key, algorithm),
        });
    }

    /// <summary>
    /// One gateway: an RS256 key by kid besides the HS256 one, an allowed browser origin, expiry
    /// warnings 4 s ahead, and the <c>org</c> namespace decided by an authorisation callback served here.
    /// </summary>
    public sealed class Pipeline : IAsyncLifetime
    {
        private readonly TestInfrastructure _infrastructure;
        private readonly HttpListener _callback = new();
        private readonly CancellationTokenSource _stopCallback = new();
        private LocalPipeline? _stack;
        private Task? _serving;

        public System.Collections.Concurrent.ConcurrentQueue<JsonObject> CallbackQuestions { get; } = new();

        public void StopCallback()
        {
            _stopCallback.Cancel();
            _callback.Stop();
        }

        public Pipeline(TestInfrastructure infrastructure)
        {
            _infrastructure = infrastructure;
            (RsaKey, RsaPublicPem) = NewRsa("rs1");
        }

        public RsaSecurityKey RsaKey { get; }

        public string RsaPublicPem { get; }

        public LocalPipeline Stack => _stack ?? throw new InvalidOperationException("Pipeline not started.");

        public async ValueTask InitializeAsync()
        {
            var port = FreePort.Next();
            _callback.Prefixes.Add($"http://127.0.0.1:{port}/");
            _callback.Start();
            _serving = Task.Run(ServeCallbackAsync);
            _stack = await LocalPipeline.StartAsync(_infrastructure, "security", gateways: 1, settings: new Dictionary<string, string?>
            {
                ["Auth__Namespaces__org__Subscribe"] = "Callback",
                ["Auth__Namespaces__org__Publish"] = "Callback",
                ["Auth__Callback__Url"] = $"http://127.0.0.1:{port}/authorize",
                ["Auth__Callback__Timeout"] = "00:00:01",
                ["Auth__Keys__0__Id"] = "rs1",
                ["Auth__Keys__0__Algorithm"] = "RS256",
                ["Auth__Keys__0__PublicKeyPem"] = RsaPublicPem,
                ["Auth__ExpiryWarning"] = "00:00:04",
                ["Gateway__AllowedOrigins__0"] = AllowedOrigin,
            });
        }

        public async ValueTask DisposeAsync()
        {
            if (_stack is not null)
            {
                await _stack.DisposeAsync();
            }

            if (!_stopCallback.IsCancellationRequested)
            {
                StopCallback();
            }

            await (_serving ?? Task.CompletedTask).ContinueWith(_ => { }, TaskScheduler.Default);
            _callback.Close();
            _stopCallback.Dispose();
            GC.SuppressFinalize(this);
        }

        /// <summary>The application's backend: allows org:acme to everyone, nothing else.</summary>
        private async Task ServeCallbackAsync()
        {
            while (!_stopCallback.IsCancellationRequested)
            {
                var context = await _callback.GetContextAsync().WaitAsync(_stopCallback.Token);
                using var reader = new StreamReader(context.Request.InputStream);
                var question = JsonNode.Parse(await reader.ReadToEndAsync(_stopCallback.Token))!.AsObject();
                CallbackQuestions.Enqueue(question);
                var allow = (string?)question["channel"] == "org:acme" ? "true" : "false";
                context.Response.ContentType = "application/json";
                await context.Response.OutputStream.WriteAsync(Encoding.UTF8.GetBytes("{\"allow\":" + allow + "}"), _stopCallback.Token);
                context.Response.Close();
            }
        }
    }
}
