using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Testing;
using StackExchange.Redis;

namespace Realtime.Gateway.Tests.Admission;

/// <summary>
/// The per-user limits' scripts against a real redis-server, standalone and as a Redis Cluster
/// node (where a script whose keys span two hash slots fails with <c>CROSSSLOT</c>, and the limits
/// would then let everyone through).
/// </summary>
public sealed class UserLimitsTests
{
    private const int Cap = 3;

    public static TheoryData<bool> Modes => new() { false, true };

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task The_cap_holds_across_nodes_and_a_released_connection_frees_its_place(bool cluster)
    {
        await using var redis = await Redis.StartAsync(cluster);
        var a = redis.Node("a");
        var b = redis.Node("b");
        await redis.MarkAliveAsync("a", "b");
        var user = Identity("alice");

        var leases = new List<UserLimits.UserConnectionLease>
        {
            (await a.TryAcquireConnectionAsync(user))!,
            (await b.TryAcquireConnectionAsync(user))!,
            (await a.TryAcquireConnectionAsync(user))!,
        };
        Assert.All(leases, Assert.NotNull);
        Assert.Null(await a.TryAcquireConnectionAsync(user));
        Assert.Null(await b.TryAcquireConnectionAsync(user));
        Assert.NotNull(await b.TryAcquireConnectionAsync(Identity("bob")));

        await leases[1].DisposeAsync();
        Assert.NotNull(await a.TryAcquireConnectionAsync(user));
        Assert.Null(await b.TryAcquireConnectionAsync(user));
        Assert.Empty(redis.Logged);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task Counts_of_a_node_whose_liveness_key_is_gone_are_dropped_when_they_would_refuse(bool cluster)
    {
        await using var redis = await Redis.StartAsync(cluster);
        var survivor = redis.Node("survivor");
        var doomed = redis.Node("doomed");
        await redis.MarkAliveAsync("survivor", "doomed");
        var user = Identity("mobile");
        for (var i = 0; i < Cap; i++)
        {
            Assert.NotNull(await (i == 0 ? survivor : doomed).TryAcquireConnectionAsync(user));
        }

        // Alive, its counts refuse.
        Assert.Null(await survivor.TryAcquireConnectionAsync(user));

        // Dead (its liveness key gone, nothing released): its two connections no longer count.
        await redis.Database.KeyDeleteAsync(redis.Names.NodeAliveKey("doomed"));
        Assert.NotNull(await survivor.TryAcquireConnectionAsync(user));
        Assert.NotNull(await survivor.TryAcquireConnectionAsync(user));
        Assert.Null(await survivor.TryAcquireConnectionAsync(user));
        Assert.Equal(["survivor"], (await redis.Database.HashKeysAsync(redis.Names.UserConnectionsKey("mobile"))).Select(k => k.ToString()));
        Assert.Empty(redis.Logged);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_node_that_starts_again_clears_the_counts_its_previous_process_left(bool cluster)
    {
        await using var redis = await Redis.StartAsync(cluster);
        await redis.MarkAliveAsync("a", "b");
        var before = redis.Node("a");
        var other = redis.Node("b");
        var users = Enumerable.Range(0, 5).Select(i => Identity($"user{i}")).ToArray();
        foreach (var user in users)
        {
            Assert.NotNull(await before.TryAcquireConnectionAsync(user));
            Assert.NotNull(await other.TryAcquireConnectionAsync(user));
        }

        // The process died without releasing; the same node id starts again.
        await redis.Node("a").ClearNodeAsync();

        foreach (var user in users)
        {
            var holders = await redis.Database.HashGetAllAsync(redis.Names.UserConnectionsKey(user.Subject));
            Assert.Equal([new HashEntry("b", 1)], holders);
        }

        Assert.False(await redis.Database.KeyExistsAsync(redis.Names.NodeUsersKey("a")));
        Assert.Empty(redis.Logged);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task A_users_publishes_are_counted_across_nodes_within_a_second(bool cluster)
    {
        await using var redis = await Redis.StartAsync(cluster, publishesPerSecond: 2);
        var a = redis.Node("a");
        var b = redis.Node("b");
        var user = Identity("chatty");

        Assert.True(await a.TryPublishAsync(user));
        Assert.True(await b.TryPublishAsync(user));
        Assert.False(await a.TryPublishAsync(user));
        Assert.True(await b.TryPublishAsync(Identity("quiet")));
        Assert.Empty(redis.Logged);
    }

    private static ClientIdentity Identity(string subject) =>
        new(subject, null, ChannelPermissions.None, DateTimeOffset.UtcNow.AddHours(1));

    /// <summary>A redis-server of its own, and <see cref="UserLimits"/> of any node id on it; time stands still.</summary>
    private sealed class Redis : IAsyncDisposable
    {
        private readonly RedisServer _server;
        private readonly ConnectionMultiplexer _connection;
        private readonly int _publishesPerSecond;
        private readonly FixedTime _time = new(DateTimeOffset.UtcNow);

        private Redis(RedisServer server, ConnectionMultiplexer connection, int publishesPerSecond)
        {
            _server = server;
            _connection = connection;
            _publishesPerSecond = publishesPerSecond;
        }

        public PipelineNames Names { get; } = new($"ul{Guid.NewGuid():N}"[..12]);

        public IDatabase Database => _connection.GetDatabase();

        /// <summary>Warnings the limits logged: each one is a time they let a client through uncounted.</summary>
        public List<string> Logged { get; } = [];

        public static async Task<Redis> StartAsync(bool cluster, int publishesPerSecond = 100)
        {
            var server = await RedisServer.StartAsync(cluster, TestContext.Current.CancellationToken);
            try
            {
                var connection = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
                Assert.Equal(cluster ? ServerType.Cluster : ServerType.Standalone, connection.GetServer(connection.GetEndPoints()[0]).ServerType);
                return new Redis(server, connection, publishesPerSecond);
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }

        public UserLimits Node(string id) => new(
            _connection,
            Names,
            new NodeIdentity(id),
            Options.Create(new GatewayOptions { MaxConnectionsPerUser = Cap, UserPublishesPerSecond = _publishesPerSecond }),
            _time,
            new ListLogger<UserLimits>(Logged));

        public async Task MarkAliveAsync(params string[] nodes)
        {
            foreach (var node in nodes)
            {
                await Database.StringSetAsync(Names.NodeAliveKey(node), 1, TimeSpan.FromMinutes(1));
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _connection.DisposeAsync();
            await _server.DisposeAsync();
        }
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    private sealed class ListLogger<T>(List<string> lines) : ILogger<T>
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lock (lines)
                {
                    lines.Add(formatter(state, exception));
                }
            }
        }
    }
}
