using Microsoft.Extensions.Options;
using Realtime.Contracts;
using StackExchange.Redis;

namespace Realtime.Fanout.Routing;

/// <summary>
/// Step 3: answers "which live nodes have subscribers of these channels" for a whole batch in
/// one pipelined Redis round trip (two when a node's liveness is not cached).
/// </summary>
/// <remarks>
/// Route sets are deliberately not cached: a gateway replies <c>ok</c> to a subscribe only
/// after its route is in Redis, and every event the fanout consumes after that moment is
/// looked up afresh, so a new subscriber's node is targeted from the next batch on (the
/// bound is one batch, i.e. the time between the route write and the next Redis lookup).
/// Only node liveness is cached, for <see cref="FanoutOptions.LivenessCacheTtl"/>: it
/// changes when a node dies, and writing to a dead node's topic a little longer is harmless.
/// Not thread-safe: owned by the consume loop.
/// </remarks>
internal sealed class RouteTable(
    IConnectionMultiplexer redis,
    PipelineNames names,
    IOptions<FanoutOptions> options,
    TimeProvider time)
{
    private readonly Dictionary<string, (bool Alive, long CheckedAt)> _liveness = new(StringComparer.Ordinal);
    private readonly List<string> _unknownNodes = [];
    private readonly TimeSpan _livenessTtl = options.Value.LivenessCacheTtl;

    /// <summary>
    /// Fills <paramref name="routes"/> with the live target nodes of each channel (an empty
    /// array when none). Throws <see cref="RedisException"/> when Redis cannot answer.
    /// </summary>
    public async Task ResolveAsync(IReadOnlyList<string> channels, Dictionary<string, string[]> routes)
    {
        var db = redis.GetDatabase();
        var batch = db.CreateBatch();
        var lookups = new Task<RedisValue[]>[channels.Count];
        for (var i = 0; i < channels.Count; i++)
        {
            lookups[i] = batch.SetMembersAsync(names.RouteKey(channels[i]));
        }

        batch.Execute();
        await Task.WhenAll(lookups);

        var now = time.GetTimestamp();
        _unknownNodes.Clear();
        foreach (var lookup in lookups)
        {
            foreach (var member in lookup.Result)
            {
                var node = (string)member!;
                if (!IsFresh(node, now) && !_unknownNodes.Contains(node))
                {
                    _unknownNodes.Add(node);
                }
            }
        }

        if (_unknownNodes.Count > 0)
        {
            await RefreshLivenessAsync(db, now);
        }

        for (var i = 0; i < channels.Count; i++)
        {
            routes[channels[i]] = LiveNodes(lookups[i].Result);
        }
    }

    private bool IsFresh(string node, long now) =>
        _liveness.TryGetValue(node, out var entry) && time.GetElapsedTime(entry.CheckedAt, now) < _livenessTtl;

    private async Task RefreshLivenessAsync(IDatabase db, long now)
    {
        var batch = db.CreateBatch();
        var checks = new Task<bool>[_unknownNodes.Count];
        for (var i = 0; i < _unknownNodes.Count; i++)
        {
            checks[i] = batch.KeyExistsAsync(names.NodeAliveKey(_unknownNodes[i]));
        }

        batch.Execute();
        await Task.WhenAll(checks);
        for (var i = 0; i < _unknownNodes.Count; i++)
        {
            _liveness[_unknownNodes[i]] = (checks[i].Result, now);
        }
    }

    private string[] LiveNodes(RedisValue[] members)
    {
        if (members.Length == 0)
        {
            return [];
        }

        var live = new List<string>(members.Length);
        foreach (var member in members)
        {
            var node = (string)member!;
            if (_liveness.TryGetValue(node, out var entry) && entry.Alive)
            {
                live.Add(node);
            }
        }

        return [.. live];
    }
}
