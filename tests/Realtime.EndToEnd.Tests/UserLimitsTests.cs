using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>Abuse limits per user, counted across gateways in Redis.</summary>
public sealed class UserLimitsTests(UserLimitsTests.Pipeline shared) : IClassFixture<UserLimitsTests.Pipeline>
{
    private const int Cap = 5;
    private const int PublishesPerSecond = 4;

    private LocalPipeline Stack => shared.Stack;

    [Fact]
    public async Task A_users_connection_cap_holds_across_two_gateways_and_frees_on_disconnect()
    {
        var user = $"busy-{Guid.NewGuid():N}";
        var token = Stack.Token(user, "room:*");
        var held = new List<TestClient>();
        for (var i = 0; i < Cap; i++)
        {
            held.Add(await TestClient.ConnectAsync(Stack.Gateways[i % 2].WebSocket, token));
        }

        // The sixth, on either node, WebSocket or SSE: 429 before any upgrade.
        foreach (var gateway in Stack.Gateways)
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, await TestClient.HandshakeStatusAsync(gateway.WebSocket, $"Bearer {token}"));
            await using var sse = await SseClient.OpenAsync(gateway.Http, "channels=room:x", token);
            Assert.Equal(HttpStatusCode.TooManyRequests, sse.Status);
            Assert.Equal("too_many_connections", (string?)(await sse.Response.Content.ReadFromJsonAsync<JsonObject>())!["error"]);
        }

        // Another user is not affected.
        await using var other = await Stack.ConnectAsync(1, $"other-{Guid.NewGuid():N}", "room:*");

        // One leaves; its slot is free again (released asynchronously: bounded wait).
        await held[0].DisposeAsync();
        held.RemoveAt(0);
        await PipelineTests.WaitUntilAsync(
            async () => await TestClient.HandshakeStatusAsync(Stack.Gateways[1].WebSocket, $"Bearer {token}") == HttpStatusCode.SwitchingProtocols,
            TimeSpan.FromSeconds(10));
        foreach (var client in held)
        {
            await client.DisposeAsync();
        }
    }

    [Fact]
    public async Task Connections_counted_on_a_gateway_that_died_are_released_when_its_liveness_expires()
    {
        await using var pipeline = await LocalPipeline.StartAsync(shared.Infrastructure, "user-limits-death", gateways: 2, settings: new Dictionary<string, string?>
        {
            ["Gateway__MaxConnectionsPerUser"] = "2",
            ["Gateway__LivenessTtl"] = "00:00:03",
            ["Gateway__HeartbeatInterval"] = "00:00:01",
        });
        var token = pipeline.Token("mobile", "room:*");
        await using var onDoomed = await TestClient.ConnectAsync(pipeline.Gateways[1].WebSocket, token);
        await using var onSurvivor = await TestClient.ConnectAsync(pipeline.Gateways[0].WebSocket, token);
        Assert.Equal(HttpStatusCode.TooManyRequests, await TestClient.HandshakeStatusAsync(pipeline.Gateways[0].WebSocket, $"Bearer {token}"));

        // The node dies without releasing anything; once its liveness key expires its count is dropped.
        pipeline.Gateways[1].Process.Kill();
        await PipelineTests.WaitUntilAsync(
            async () => await TestClient.HandshakeStatusAsync(pipeline.Gateways[0].WebSocket, $"Bearer {token}") == HttpStatusCode.SwitchingProtocols,
            TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task A_users_publish_rate_holds_across_its_connections_on_two_gateways()
    {
        var user = $"chatty-{Guid.NewGuid():N}";
        var channel = $"room:{Guid.NewGuid():N}";
        await using var first = await Stack.ConnectAsync(0, user, "room:*");
        await using var second = await Stack.ConnectAsync(1, user, "room:*");

        // Three times the per-second budget, alternating nodes, in well under a second: that spans
        // at most two one-second windows, so at most twice the budget gets through.
        var outcomes = new List<string?>();
        for (var i = 0; i < 3 * PublishesPerSecond; i++)
        {
            var reply = await (i % 2 == 0 ? first : second).PublishAsync(channel, i);
            outcomes.Add((string?)reply["type"] == "ack" ? "ack" : (string?)reply["code"]);
        }

        Assert.InRange(outcomes.Count(o => o == "ack"), PublishesPerSecond, 2 * PublishesPerSecond);
        Assert.All(outcomes.Where(o => o != "ack"), o => Assert.Equal("rate_limited", o));
    }

    /// <summary>Two gateways with a cap of five connections and four publishes per second per user.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "user-limits", gateways: 2, settings: new Dictionary<string, string?>
    {
        ["Gateway__MaxConnectionsPerUser"] = Cap.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Gateway__UserPublishesPerSecond"] = PublishesPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
    })
    {
        public TestInfrastructure Infrastructure { get; } = infrastructure;
    }
}
