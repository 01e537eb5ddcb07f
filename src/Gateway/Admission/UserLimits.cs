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
/// A connection is counted under the node that holds it; counts of nodes whose liveness key is
/// gone are dropped when the user next connects (their connections died with them), and a node
/// clears its own counts when it starts. When Redis does not answer, the limits let the client
/// through (they protect capacity; authentication and permissions never fail open).
/// </remarks>
internal sealed partial class UserLimits(
    IConnectionMultiplexer redis,
    PipelineNames names,
    NodeIdentity node,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<UserLimits> logger)
{
    // KEYS[1] user's hash, KEYS[2] node's user set. ARGV: node, cap, alive-key prefix, alive-key suffix, subject, ttl ms.
    private const string AcquireScript = """
        local total = 0
        local counts = redis.call('HGETALL', KEYS[1])
        for i = 1, #counts, 2 do
          local holder = counts[i]
          if holder == ARGV[1] or redis.call('EXISTS', ARGV[3] .. holder .. ARGV[4]) == 1 then
            total = total + tonumber(counts[i + 1])
          else
            redis.call('HDEL', KEYS[1], holder)
          end
        end
        if total >= tonumber(ARGV[2]) then
          return -1
        end
        redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
        redis.call('PEXPIRE', KEYS[1], ARGV[6])
        redis.call('SADD', KEYS[2], ARGV[5])
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
            var result = (long)await redis.GetDatabase().ScriptEvaluateAsync(
                AcquireScript,
                [names.UserConnectionsKey(identity.Subject), names.NodeUsersKey(node.Id)],
                [node.Id, _options.MaxConnectionsPerUser, names.NodeKeyPrefix, PipelineNames.NodeAliveSuffix, identity.Subject, (long)CountTtl.TotalMilliseconds]);
            return result < 0 ? null : new UserConnectionLease(this, identity.Subject);
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
        foreach (var user in users)
        {
            await db.HashDeleteAsync(names.UserConnectionsKey(user.ToString()), node.Id);
        }

        await db.KeyDeleteAsync(names.NodeUsersKey(node.Id));
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
