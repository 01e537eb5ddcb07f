using Realtime.Testing;
using StackExchange.Redis;

namespace Realtime.Testing.Tests;

public sealed class RedisServerTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Ping = TimeSpan.FromSeconds(2);

    [Fact(Timeout = 20_000)]
    public async Task Starts_answers_ping_and_keeps_keys()
    {
        await using var redis = await RedisServer.StartAsync(TestContext.Current.CancellationToken);
        output.WriteLine($"{redis.ConnectionString} {redis.Process.LogPath}");

        Assert.Equal($"127.0.0.1:{redis.Port},abortConnect=false", redis.ConnectionString);
        Assert.True(await redis.PingAsync(Ping));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = connection.GetDatabase();
        Assert.True((await db.PingAsync()) < TimeSpan.FromSeconds(2));
        await db.StringSetAsync("k", "v");
        Assert.Equal("v", (string?)await db.StringGetAsync("k"));
    }

    [Fact(Timeout = 20_000)]
    public async Task In_cluster_mode_it_is_one_node_that_owns_every_slot_refuses_cross_slot_scripts_and_keeps_them_after_a_restart()
    {
        await using var redis = await RedisServer.StartAsync(cluster: true, TestContext.Current.CancellationToken);
        Assert.True(redis.IsCluster);
        for (var round = 0; round < 2; round++)
        {
            await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
            Assert.Equal(ServerType.Cluster, connection.GetServer(connection.GetEndPoints()[0]).ServerType);
            var db = connection.GetDatabase();
            Assert.False(await db.KeyExistsAsync("{a}:k"));

            // Keys under one hash tag share a slot; keys under two do not.
            Assert.Equal(2, (long)await db.ScriptEvaluateAsync("return #KEYS", ["{a}:1", "{a}:2"]));
            var refused = await Assert.ThrowsAsync<RedisServerException>(() => db.ScriptEvaluateAsync("return #KEYS", ["{a}:1", "{b}:1"]));
            Assert.StartsWith("CROSSSLOT", refused.Message, StringComparison.Ordinal);

            // After a kill the node reads its slots back and serves again, empty.
            await db.StringSetAsync("{a}:k", "v");
            await redis.RestartAsync();
        }
    }

    [Fact(Timeout = 20_000)]
    public async Task Kill_loses_the_data_and_start_again_serves_an_empty_server_on_the_same_port()
    {
        await using var redis = await RedisServer.StartAsync(TestContext.Current.CancellationToken);
        var port = redis.Port;
        await using (var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString))
        {
            await connection.GetDatabase().StringSetAsync("survives?", "no");
        }

        var first = redis.Process.Pid;
        await redis.KillAsync();

        Assert.False(redis.IsRunning);
        Assert.Equal(137, redis.Process.ExitCode);
        Assert.False(await redis.PingAsync(TimeSpan.FromMilliseconds(500)));

        await redis.StartAgainAsync();

        Assert.Equal(port, redis.Port);
        Assert.NotEqual(first, redis.Process.Pid);
        Assert.True(await redis.PingAsync(Ping));
        await using (var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString))
        {
            Assert.False((await connection.GetDatabase().StringGetAsync("survives?")).HasValue);
        }
    }

    [Fact(Timeout = 20_000)]
    public async Task Restart_is_kill_and_start_again()
    {
        await using var redis = await RedisServer.StartAsync(TestContext.Current.CancellationToken);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        await connection.GetDatabase().StringSetAsync("k", "v");
        var first = redis.Process.Pid;

        await redis.RestartAsync();

        Assert.NotEqual(first, redis.Process.Pid);
        Assert.True(redis.IsRunning);
        // The same multiplexer reconnects to the new server on its own (abortConnect=false).
        var db = connection.GetDatabase();
        var value = await RetryAsync(async () => await db.StringGetAsync("k"));
        Assert.False(value.HasValue);
    }

    [Fact(Timeout = 20_000)]
    public async Task Start_again_while_running_is_refused()
    {
        await using var redis = await RedisServer.StartAsync(TestContext.Current.CancellationToken);

        await Assert.ThrowsAsync<InvalidOperationException>(redis.StartAgainAsync);
    }

    [Fact(Timeout = 20_000)]
    public async Task Two_servers_get_different_ports()
    {
        await using var a = await RedisServer.StartAsync(TestContext.Current.CancellationToken);
        await using var b = await RedisServer.StartAsync(TestContext.Current.CancellationToken);

        Assert.NotEqual(a.Port, b.Port);
        Assert.True(await a.PingAsync(Ping));
        Assert.True(await b.PingAsync(Ping));
    }

    private static async Task<T> RetryAsync<T>(Func<Task<T>> action)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            try
            {
                return await action();
            }
            catch (RedisConnectionException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }
}
