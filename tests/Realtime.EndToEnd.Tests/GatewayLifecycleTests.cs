using Grpc.Health.V1;
using Grpc.Net.Client;
using Realtime.Testing;
using StackExchange.Redis;

namespace Realtime.EndToEnd.Tests;

/// <summary>What a gateway does to the routing table and its probes around its own life.</summary>
public sealed class GatewayLifecycleTests(TestInfrastructure infrastructure)
{
    [Fact]
    public async Task A_gateway_clears_routes_a_previous_process_left_under_its_node_id_and_reports_ready()
    {
        const string StaleChannel = "room:left-behind";
        using var redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.Redis.ConnectionString);
        var db = redis.GetDatabase();

        await using var pipeline = await LocalPipeline.StartAsync(infrastructure, "lifecycle", gateways: 1, beforeStart: async p =>
        {
            // What a gw-0 that crashed with a subscriber would have left.
            await db.SetAddAsync(p.Names.RouteKey(StaleChannel), "gw-0");
            await db.SetAddAsync(p.Names.NodeRoutesKey("gw-0"), StaleChannel);
        });

        Assert.False(await db.SetContainsAsync(pipeline.Names.RouteKey(StaleChannel), "gw-0"));
        // Only the route the node registers for itself at start remains: the control channel.
        Assert.Equal([Realtime.Contracts.PipelineNames.ControlChannel], (await db.SetMembersAsync(pipeline.Names.NodeRoutesKey("gw-0"))).Select(m => (string)m!));
        Assert.True(await db.KeyExistsAsync(pipeline.Names.NodeAliveKey("gw-0")));
        Assert.True(await db.KeyTimeToLiveAsync(pipeline.Names.NodeAliveKey("gw-0")) is { TotalSeconds: > 0 and <= 10 });

        using var channel = GrpcChannel.ForAddress(pipeline.Gateways[0].Grpc);
        var health = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        // Stopping removes the node's liveness key at once, so the fanout stops routing to it.
        await pipeline.Gateways[0].Process.TerminateAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, pipeline.Gateways[0].Process.ExitCode);
        Assert.False(await db.KeyExistsAsync(pipeline.Names.NodeAliveKey("gw-0")));
    }
}
