using Realtime.Contracts;
using StackExchange.Redis;

namespace Realtime.Gateway.Routing;

/// <summary>
/// This node's rows of the Redis routing table (step 3): which channels it has subscribers
/// of, and its liveness key. The fanout reads them; only this class writes them.
/// </summary>
internal sealed class RouteRegistry(IConnectionMultiplexer redis, PipelineNames names, NodeIdentity node)
{
    private readonly RedisValue _node = node.Id;
    private readonly RedisKey _nodeRoutes = names.NodeRoutesKey(node.Id);
    private readonly RedisKey _alive = names.NodeAliveKey(node.Id);
    private readonly RedisKey _stats = names.NodeStatsKey(node.Id);

    /// <summary>Adds this node to the channel's route set. Completes once Redis has it.</summary>
    public async Task AddAsync(string channel)
    {
        var batch = redis.GetDatabase().CreateBatch();
        var add = batch.SetAddAsync(names.RouteKey(channel), _node);
        var remember = batch.SetAddAsync(_nodeRoutes, channel);
        batch.Execute();
        await Task.WhenAll(add, remember);
    }

    /// <summary>Removes this node from the channel's route set.</summary>
    public async Task RemoveAsync(string channel)
    {
        var batch = redis.GetDatabase().CreateBatch();
        var remove = batch.SetRemoveAsync(names.RouteKey(channel), _node);
        var forget = batch.SetRemoveAsync(_nodeRoutes, channel);
        batch.Execute();
        await Task.WhenAll(remove, forget);
    }

    /// <summary>Adds this node to many route sets in one round trip (after Redis lost them).</summary>
    public async Task AddManyAsync(IReadOnlyCollection<string> channels)
    {
        if (channels.Count == 0)
        {
            return;
        }

        var batch = redis.GetDatabase().CreateBatch();
        var writes = new List<Task>(channels.Count + 1);
        foreach (var channel in channels)
        {
            writes.Add(batch.SetAddAsync(names.RouteKey(channel), _node));
        }

        writes.Add(batch.SetAddAsync(_nodeRoutes, [.. channels.Select(c => (RedisValue)c)]));
        batch.Execute();
        await Task.WhenAll(writes);
    }

    /// <summary>Removes every route this node has in Redis, e.g. left over by a previous life under the same id.</summary>
    /// <returns>How many routes were removed.</returns>
    public async Task<int> RemoveAllAsync()
    {
        var db = redis.GetDatabase();
        var channels = await db.SetMembersAsync(_nodeRoutes);
        if (channels.Length > 0)
        {
            var batch = db.CreateBatch();
            var removals = channels.Select(c => batch.SetRemoveAsync(names.RouteKey((string)c!), _node)).ToArray();
            batch.Execute();
            await Task.WhenAll(removals);
        }

        await db.KeyDeleteAsync(_nodeRoutes);
        return channels.Length;
    }

    /// <summary>
    /// Refreshes the liveness key. Returns false when the key was missing, i.e. it expired or
    /// Redis lost its data: routes must then be registered again.
    /// </summary>
    public async Task<bool> HeartbeatAsync(TimeSpan ttl, long nowUnixMs, int connections = 0)
    {
        var db = redis.GetDatabase();
        var batch = db.CreateBatch();
        var previous = batch.StringSetAndGetAsync(_alive, nowUnixMs, ttl);
        var listed = batch.SortedSetAddAsync(names.NodesKey, _node, nowUnixMs);
        var stats = batch.HashSetAsync(_stats, [new HashEntry("connections", connections), new HashEntry("heartbeat", nowUnixMs)]);
        var expiry = batch.KeyExpireAsync(_stats, ttl * 3);
        batch.Execute();
        await Task.WhenAll(previous, listed, stats, expiry);
        return !previous.Result.IsNull;
    }

    /// <summary>Deletes the liveness key so the fanout stops routing here at once.</summary>
    public Task MarkDeadAsync() => redis.GetDatabase().KeyDeleteAsync(_alive);
}
