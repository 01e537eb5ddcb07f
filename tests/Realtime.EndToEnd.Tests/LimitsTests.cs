using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>Admission control and per-connection limits, with the gateway's default admission rate.</summary>
public sealed class LimitsTests(LimitsTests.Pipeline shared, ITestOutputHelper output) : IClassFixture<LimitsTests.Pipeline>
{
    private LocalPipeline Stack => shared.Stack;

    [Fact]
    public async Task A_burst_of_three_thousand_handshakes_gets_503_with_retry_after_for_the_excess_and_all_succeed_on_retry()
    {
        const int Attempts = 3_000;
        var token = Stack.Token("storm", "room:*");
        var sockets = new ConcurrentBag<ClientWebSocket>();
        var statuses = new ConcurrentDictionary<HttpStatusCode, int>();
        var retryAfterSeen = 0;
        var uri = Stack.Gateways[0].WebSocket;

        async Task<bool> TryOnceAsync(bool first)
        {
            var socket = new ClientWebSocket();
            socket.Options.CollectHttpResponseDetails = true;
            socket.Options.SetRequestHeader("Authorization", $"Bearer {token}");
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                await socket.ConnectAsync(uri, timeout.Token);
                sockets.Add(socket);
                if (first)
                {
                    statuses.AddOrUpdate(HttpStatusCode.SwitchingProtocols, 1, (_, n) => n + 1);
                }

                return true;
            }
            catch (WebSocketException)
            {
                if (first)
                {
                    statuses.AddOrUpdate(socket.HttpStatusCode, 1, (_, n) => n + 1);
                }

                if (socket.HttpStatusCode == HttpStatusCode.ServiceUnavailable
                    && socket.HttpResponseHeaders?.TryGetValue("Retry-After", out var values) == true && values.Any())
                {
                    Interlocked.Increment(ref retryAfterSeen);
                }

                socket.Dispose();
                return false;
            }
        }

        var started = DateTime.UtcNow;
        var firstTry = await Task.WhenAll(Enumerable.Range(0, Attempts).Select(_ => Task.Run(() => TryOnceAsync(first: true))));
        var burst = DateTime.UtcNow - started;
        var refused = firstTry.Count(ok => !ok);
        output.WriteLine($"burst of {Attempts} in {burst.TotalMilliseconds:F0} ms: {string.Join(", ", statuses.Select(s => $"{(int)s.Key}={s.Value}"))}");

        Assert.Equal([HttpStatusCode.SwitchingProtocols, HttpStatusCode.ServiceUnavailable], statuses.Keys.Order());
        Assert.Equal(refused, retryAfterSeen);
        // 500/s with a burst of 500: in a burst of t seconds at most 500 + 500 t get in.
        Assert.True(Attempts - refused <= 500 + (500 * burst.TotalSeconds) + 10, $"admitted {Attempts - refused} in {burst}");

        // Clients that honour Retry-After all get in, in bounded time.
        var pending = refused;
        for (var round = 0; pending > 0 && round < 30; round++)
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
            var results = await Task.WhenAll(Enumerable.Range(0, pending).Select(_ => Task.Run(() => TryOnceAsync(first: false))));
            pending = results.Count(ok => !ok);
        }

        Assert.Equal(0, pending);
        Assert.Equal(Attempts, sockets.Count);
        await Stack.Gateways[0].Process.WaitForHttpOkAsync(new Uri(Stack.Gateways[0].Http, "/readyz"), TimeSpan.FromSeconds(10));
        foreach (var socket in sockets)
        {
            socket.Abort();
            socket.Dispose();
        }
    }

    [Fact]
    public async Task Publishing_faster_than_the_connection_limit_gets_rate_limited_with_retry_after()
    {
        await using var client = await Stack.ConnectAsync(1, "fast", "room:*");
        var channel = $"room:{Guid.NewGuid():N}";
        var replies = new List<JsonObject>();
        for (var i = 0; i < 15; i++)
        {
            replies.Add(await client.PublishAsync(channel, i));
        }

        var limited = replies.Where(r => (string?)r["type"] == "error").ToList();
        output.WriteLine($"acks={replies.Count - limited.Count} limited={limited.Count}");
        Assert.InRange(limited.Count, 1, 5);
        Assert.All(limited, r => Assert.Equal("rate_limited", (string?)r["code"]));
        Assert.All(limited, r => Assert.InRange((long)r["retryAfterMs"]!, 1L, 1_000L));

        // The promise is about the state after the last refusal: on a slow machine tokens come back
        // between the publishes above, so refusals and acks interleave. Publish until refused again.
        var last = replies[^1];
        for (var n = 100; (string?)last["type"] != "error" && n < 130; n++)
        {
            last = await client.PublishAsync(channel, n);
        }

        Assert.Equal("rate_limited", (string?)last["code"]);

        // Waited out on the monotonic clock: Task.Delay runs on a coarse tick on Linux (a few ms)
        // and can return before a short delay has passed, which would be the client retrying early.
        var retryAfter = TimeSpan.FromMilliseconds((long)last["retryAfterMs"]!);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (waited.Elapsed < retryAfter)
        {
            await Task.Delay(1);
        }

        var after = await client.PublishAsync(channel, 99);
        Assert.True((string?)after["type"] == "ack", after.ToJsonString());
    }

    [Fact]
    public async Task A_connection_gets_at_most_its_channel_cap_and_its_subscribe_rate()
    {
        await using var client = await Stack.ConnectAsync(1, "many", "room:*");
        for (var i = 0; i < Pipeline.MaxChannels; i++)
        {
            Assert.Equal("ok", (string?)(await client.SubscribeAsync($"room:cap-{i}"))["type"]);
        }

        var over = await client.SubscribeAsync("room:cap-one-more");
        Assert.Equal("too_many_channels", (string?)over["code"]);
        await client.UnsubscribeAsync("room:cap-0");
        Assert.Equal("ok", (string?)(await client.SubscribeAsync("room:cap-one-more"))["type"]);

        await using var eager = await Stack.ConnectAsync(1, "eager", "room:*");
        var answers = new List<string?>();
        for (var i = 0; i < Pipeline.SubscribesPerSecond + 5; i++)
        {
            answers.Add((string?)(await eager.SubscribeAsync("room:same"))["code"]);
        }

        Assert.Contains("rate_limited", answers);
        Assert.Equal(Pipeline.SubscribesPerSecond, answers.Count(a => a is null));
    }

    /// <summary>A pipeline with the gateway's default admission and publish limits, and small channel limits.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "limits", settings: new Dictionary<string, string?>
    {
        ["Gateway__NewConnectionsPerSecond"] = "500",
        ["Gateway__PublishesPerSecond"] = "10",
        ["Gateway__SubscribesPerSecond"] = SubscribesPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Gateway__MaxChannelsPerConnection"] = MaxChannels.ToString(System.Globalization.CultureInfo.InvariantCulture),
    })
    {
        public const int MaxChannels = 5;
        public const int SubscribesPerSecond = 20;
    }
}
