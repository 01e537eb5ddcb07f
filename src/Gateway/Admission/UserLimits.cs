using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Gateway.Auth;
using StackExchange.Redis;

namespace Realtime.Gateway.Admission;

/// <summary>
/// Abuse limits per user across every node, counted in Redis: at most
/// <see cref="GatewayOptions.MaxConnectionsPerUser"/> concurrent connections, and at most
/// <see cref="GatewayOptions.UserPublishesPerSecond"/> publishes per second over all of the
/// user's connections and HTTP publishes.
/// </summary>
/// <remarks>
/// A connection is counted under the node that holds it, in one hash per user. Counts of a node
/// that died are only looked at when they would refuse the user: the refusal names the other
/// nodes that hold counts, their liveness keys are read, and the counts of those that are gone are
/// dropped before the user is counted again. A node clears its own counts when it starts. When
/// Redis does not answer, the limits let the client through (they protect capacity;
/// authentication and permissions never fail open).
///
/// Every script touches one key, so the limits hold on a Redis Cluster as on a single server
/// (a script that reads keys in two hash slots fails there with <c>CROSSSLOT</c>).
/// </remarks>
internal sealed partial class UserLimits(
    IConnectionMultiplexer redis,
    PipelineNames names,
    NodeIdentity node,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<UserLimits> logger)
{
    // KEYS[1] the user's hash (node id -> connections). ARGV: node, cap, ttl ms, then nodes known dead.
    // Returns the new total, or, at the cap, the other nodes that hold counts.
    private const string AcquireScript = """
        local dead = {}
        for i = 4, #ARGV do
          dead[ARGV[i]] = true
        end
        local total = 0
        local others = {}
        local counts = redis.call('HGETALL', KEYS[1])
        for i = 1, #counts, 2 do
          local holder = counts[i]
          if dead[holder] then
            redis.call('HDEL', KEYS[1], holder)
          else
            total = total + tonumber(counts[i + 1])
            if holder ~= ARGV[1] then
              others[#others + 1] = holder
            end
          end
        end
        if total >= tonumber(ARGV[2]) then
          return others
        end
        redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        return total + 1
        """;

    private const string ReleaseScript = """
        if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
          redis.call('HDEL', KEYS[1], ARGV[1])
        end
        return 0
        """;

    private const string CountScript = """
        local n = redis.call('INCR', KEYS[1])
        if n == 1 then
          redis.call('PEXPIRE', KEYS[1], 2000)
        end
        return n
        """;

    private static readonly TimeSpan CountTtl = TimeSpan.FromDays(1);
    private readonly GatewayOptions _options = options.Value;

    /// <summary>Counts one more connection of the user; null when the user is at the cap.</summary>
    public async Task<UserConnectionLease?> TryAcquireConnectionAsync(ClientIdentity identity)
    {
        try
        {
            var db = redis.GetDatabase();
            var counts = (RedisKey)names.UserConnectionsKey(identity.Subject);

            // Remembered first, in the same round trip, so that a restart of this node finds the count to clear.
            var batch = db.CreateBatch();
            var remembered = batch.SetAddAsync(names.NodeUsersKey(node.Id), identity.Subject);
            var first = batch.ScriptEvaluateAsync(AcquireScript, [counts], AcquireArguments([]));
            batch.Execute();
            await Task.WhenAll(remembered, first);
            var result = first.Result;
            if (result.Resp2Type == ResultType.Array)
            {
                // At the cap: the counts of nodes that died since the user last reached it may be all that refuses it.
                var dead = await DeadNodesAsync(db, (RedisValue[])result!);
                if (dead.Length == 0)
                {
                    return null;
                }

                result = await db.ScriptEvaluateAsync(AcquireScript, [counts], AcquireArguments(dead));
                if (result.Resp2Type == ResultType.Array)
                {
                    return null;
                }
            }

            return new UserConnectionLease(this, identity.Subject);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogUncounted(e.Message);
            return new UserConnectionLease(null, identity.Subject);
        }
    }

    /// <summary>Takes one publish from the user's budget of this second; false when it is spent.</summary>
    public async Task<bool> TryPublishAsync(ClientIdentity identity)
    {
        try
        {
            var second = time.GetUtcNow().ToUnixTimeSeconds();
            var count = (long)await redis.GetDatabase().ScriptEvaluateAsync(CountScript, [names.UserPublishesKey(identity.Subject, second)]);
            return count <= _options.UserPublishesPerSecond;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogUncounted(e.Message);
            return true;
        }
    }

    /// <summary>Clears the counts a previous process of this node left (its connections are gone).</summary>
    public async Task ClearNodeAsync()
    {
        var db = redis.GetDatabase();
        var users = await db.SetMembersAsync(names.NodeUsersKey(node.Id));
        if (users.Length > 0)
        {
            var batch = db.CreateBatch();
            var deletes = Array.ConvertAll(users, user => batch.HashDeleteAsync(names.UserConnectionsKey(user.ToString()), node.Id));
            batch.Execute();
            await Task.WhenAll(deletes);
        }

        await db.KeyDeleteAsync(names.NodeUsersKey(node.Id));
    }

    private RedisValue[] AcquireArguments(RedisValue[] deadNodes)
    {
        var arguments = new RedisValue[3 + deadNodes.Length];
        arguments[0] = node.Id;
        arguments[1] = _options.MaxConnectionsPerUser;
        arguments[2] = (long)CountTtl.TotalMilliseconds;
        deadNodes.CopyTo(arguments, 3);
        return arguments;
    }

    // The holders whose liveness key is gone: one EXISTS each, in one round trip (each in its own slot).
    private async Task<RedisValue[]> DeadNodesAsync(IDatabase db, RedisValue[] holders)
    {
        if (holders.Length == 0)
        {
            return [];
        }

        var batch = db.CreateBatch();
        var checks = Array.ConvertAll(holders, holder => batch.KeyExistsAsync(names.NodeAliveKey(holder.ToString())));
        batch.Execute();
        await Task.WhenAll(checks);
        return [.. holders.Where((_, i) => !checks[i].Result)];
    }

    private async Task ReleaseAsync(string subject)
    {
        try
        {
            await redis.GetDatabase().ScriptEvaluateAsync(ReleaseScript, [names.UserConnectionsKey(subject)], [node.Id]);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // Over-counted until the node restarts or the count expires; never under.
            LogUncounted(e.Message);
        }
    }

    [LoggerMessage(EventId = 5300, Level = LogLevel.Warning, Message = "Per-user limits not counted (Redis: {Reason}); letting the client through")]
    private partial void LogUncounted(string reason);

    /// <summary>Held for a connection's lifetime; disposing releases its count.</summary>
    internal sealed class UserConnectionLease(UserLimits? owner, string subject) : IAsyncDisposable
    {
        private int _released;

        public async ValueTask DisposeAsync()
        {
            if (owner is not null && Interlocked.Exchange(ref _released, 1) == 0)
            {
                await owner.ReleaseAsync(subject);
            }
        }
    }
}
