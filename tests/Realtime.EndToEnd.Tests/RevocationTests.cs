using System.Diagnostics;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Grpc.Core;
using Realtime.Contracts.V1;
using Realtime.Hosting;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>Revocations through the gRPC Sessions API reach every gateway over the Kafka path, and stick.</summary>
public sealed class RevocationTests(RevocationTests.Pipeline shared, ITestOutputHelper output) : IClassFixture<RevocationTests.Pipeline>
{
    private LocalPipeline Stack => shared.Stack;

    [Fact]
    public async Task Revoking_a_users_sessions_closes_them_on_another_gateway_within_a_second_and_refuses_their_old_tokens()
    {
        var victim = $"victim-{Guid.NewGuid():N}";
        var oldToken = Stack.Token(victim, "room:*");
        await using var onOther = await TestClient.ConnectAsync(Stack.Gateways[1].WebSocket, oldToken);
        await using var onSame = await TestClient.ConnectAsync(Stack.Gateways[0].WebSocket, oldToken);
        await using var bystander = await Stack.ConnectAsync(1, "bystander", "room:*");

        var sessions = SessionsClient(0);
        var clock = Stopwatch.StartNew();
        var answer = await sessions.RevokeSessionsAsync(new RevokeSessionsRequest { Subject = victim, Reason = "account suspended" }, Admin(), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.True(answer.RevokedAtUnixMs > 0);

        Assert.Equal((WebSocketCloseStatus)4003, await onOther.WaitClosedAsync(TimeSpan.FromSeconds(10)));
        var took = clock.Elapsed;
        output.WriteLine($"closed on the other gateway {took.TotalMilliseconds:F0} ms after the call");
        Assert.True(took < TimeSpan.FromSeconds(1), $"took {took}");
        Assert.Equal((WebSocketCloseStatus)4003, await onSame.WaitClosedAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains(onOther.Other, f => (string?)f["type"] == "auth.revoked" && (string?)f["reason"] == "account suspended");
        Assert.Equal("pong", (string?)(await bystander.PingAsync())["type"]);

        // The old token is refused on every node; one issued after the revocation gets in.
        foreach (var gateway in Stack.Gateways)
        {
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, await TestClient.HandshakeStatusAsync(gateway.WebSocket, $"Bearer {oldToken}"));
        }

        // iat has whole seconds: a token minted in the revocation's second counts as older.
        await Task.Delay(TimeSpan.FromMilliseconds(1100));
        await using var back = await TestClient.ConnectAsync(Stack.Gateways[1].WebSocket, Stack.Token(victim, "room:*"));
        Assert.Equal("pong", (string?)(await back.PingAsync())["type"]);
    }

    [Fact]
    public async Task Revoking_access_to_a_channel_ends_that_subscription_everywhere_and_refuses_it_again()
    {
        var user = $"member-{Guid.NewGuid():N}";
        var channel = $"room:{Guid.NewGuid():N}";
        var other = $"room:{Guid.NewGuid():N}";
        var token = Stack.Token(user, "room:*");
        await using var client = await TestClient.ConnectAsync(Stack.Gateways[1].WebSocket, token);
        await client.SubscribeAsync(channel);
        await client.SubscribeAsync(other);

        var clock = Stopwatch.StartNew();
        await SessionsClient(0).RevokeChannelAccessAsync(new RevokeChannelAccessRequest { Subject = user, Channel = channel }, Admin(), deadline: DateTime.UtcNow.AddSeconds(10));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        JsonObject? revoked = null;
        while (revoked is null && DateTime.UtcNow < deadline)
        {
            revoked = client.Other.FirstOrDefault(f => (string?)f["type"] == "channel.access.revoked");
            await Task.Delay(10);
        }

        output.WriteLine($"subscription ended on the other gateway {clock.ElapsedMilliseconds} ms after the call");
        Assert.NotNull(revoked);
        Assert.Equal(channel, (string?)revoked["channel"]);
        Assert.Null(client.CloseStatus);

        // Gone, refused again with the same token, and the other channel still delivers.
        Assert.Equal("not_authorized", (string?)(await client.SubscribeAsync(channel))["code"]);
        await using var publisher = await Stack.ConnectAsync(0, "pub", "room:*");
        await publisher.PublishAsync(other, 7);
        Assert.Equal(7, (int)(await client.NextEventAsync())["data"]!);
    }

    [Fact]
    public async Task A_publish_stream_of_a_revoked_subject_ends_with_unauthenticated_on_its_next_event()
    {
        var service = $"service-{Guid.NewGuid():N}";
        var channel = $"room:{Guid.NewGuid():N}";
        using var call = Stack.PublisherClient(1).PublishStream(new Metadata { { "authorization", $"Bearer {Stack.Token(service, "room:*")}" } }, deadline: DateTime.UtcNow.AddSeconds(30));
        await call.RequestStream.WriteAsync(PublishStreamTests.Event(channel, 0));
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(PublishStreamResponse.OutcomeOneofCase.Result, call.ResponseStream.Current.OutcomeCase);

        await SessionsClient(0).RevokeSessionsAsync(new RevokeSessionsRequest { Subject = service, Reason = "key leaked" }, Admin(), deadline: DateTime.UtcNow.AddSeconds(10));

        // The revocation reaches gateway 1 over Kafka: until then its events are answered, and
        // the first event after it ends the call (bounded: 100 events, 50 ms apart).
        RpcException? ended = null;
        for (var n = 1; n <= 100 && ended is null; n++)
        {
            try
            {
                await call.RequestStream.WriteAsync(PublishStreamTests.Event(channel, n));
                Assert.True(await call.ResponseStream.MoveNext());
                Assert.Equal(PublishStreamResponse.OutcomeOneofCase.Result, call.ResponseStream.Current.OutcomeCase);
                await Task.Delay(50, CancellationToken.None);
            }
            catch (RpcException e)
            {
                ended = e;
            }
            catch (InvalidOperationException)
            {
                // Written after the call ended: its status is what the response stream ends with.
                ended = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
            }
        }

        Assert.NotNull(ended);
        Assert.Equal(StatusCode.Unauthenticated, ended.StatusCode);
        Assert.Contains("Revoked", ended.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Only_admins_may_revoke_and_bad_requests_are_refused()
    {
        var sessions = SessionsClient(0);
        var user = new Metadata { { "authorization", $"Bearer {Stack.Token("someone", "room:*")}" } };
        var denied = await Assert.ThrowsAsync<RpcException>(() => sessions.RevokeSessionsAsync(new RevokeSessionsRequest { Subject = "x" }, user).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        var anonymous = await Assert.ThrowsAsync<RpcException>(() => sessions.RevokeSessionsAsync(new RevokeSessionsRequest { Subject = "x" }).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, anonymous.StatusCode);
        var noSubject = await Assert.ThrowsAsync<RpcException>(() => sessions.RevokeSessionsAsync(new RevokeSessionsRequest(), Admin()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, noSubject.StatusCode);
        var badChannel = await Assert.ThrowsAsync<RpcException>(() => sessions.RevokeChannelAccessAsync(new RevokeChannelAccessRequest { Subject = "x", Channel = "bad name" }, Admin()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badChannel.StatusCode);
    }

    private Sessions.SessionsClient SessionsClient(int gateway) => new(Stack.GrpcChannelTo(gateway));

    private Metadata Admin() => new()
    {
        { "authorization", $"Bearer {DevTokens.Mint(Stack.SigningKey, "ops", [], TimeSpan.FromMinutes(5), LocalPipeline.Issuer, LocalPipeline.Audience, roles: ["realtime.admin"])}" },
    };

    /// <summary>Two gateways.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "revocation", gateways: 2);
}
