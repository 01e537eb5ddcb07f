using Microsoft.Extensions.Options;
using Realtime.Contracts;
using StackExchange.Redis;

namespace Realtime.Fanout.Routing;

/// <summary>The events of one channel in a batch, in ingress order, and what sequencing decided for them.</summary>
internal sealed class ChannelWork(string channel, int partition)
{
    public string Channel { get; } = channel;

    public int Partition { get; } = partition;

    /// <summary>Indexes into the batch, in ingress order.</summary>
    public List<int> Records { get; } = [];

    /// <summary>
    /// Seq of each record: 0 for a transient event (it has no position), -1 for one sequenced so
    /// long ago that it left the index (it was delivered then).
    /// </summary>
    public List<long> Seqs { get; } = [];

    public string Epoch { get; set; } = string.Empty;

    /// <summary>
    /// Live nodes with subscribers at the moment the batch was sequenced, sorted. Channels with the
    /// same targets share one array instance (see <see cref="ChannelSequencer"/>), which is what
    /// lets their deliveries share one node-topic batch.
    /// </summary>
    public string[] Targets { get; set; } = [];

    /// <summary>
    /// The node-topic batch this channel's events go into (shared by every channel with the same
    /// targets): looked up once per channel and batch, not once per event.
    /// </summary>
    public Delivery.NodeBatch? TargetBatch { get; set; }
}

/// <summary>
/// Step 3, with positions: one Redis script per channel of a batch (all pipelined in one round
/// trip) assigns each new event the next <c>seq</c> of its channel, returns the seq an already
/// sequenced event got before, records the event in the channel's index and recent window, and
/// reads the channel's route set, all atomically.
/// </summary>
/// <remarks>
/// Idempotence: a channel's events all come from one ingress partition, in offset order, so an
/// event whose offset is not beyond the channel's last sequenced offset was sequenced before
/// (by this worker before a crash, or by the partition's previous owner); its seq is looked up
/// by offset instead of assigned again. No two events of a channel share a seq.
/// Atomic with the route read: a gateway registers its route, then reads the channel's seq. Any
/// event sequenced after that read was sequenced after the route existed, so it is routed to
/// that gateway; every event up to that seq can be replayed. There is no window in between.
/// </remarks>
internal sealed class ChannelSequencer(
    IConnectionMultiplexer redis,
    PipelineNames names,
    IOptions<FanoutOptions> options,
    TimeProvider time)
{
    // KEYS: state, index, recent, route.  ARGV: epoch candidate, recent limit, index limit,
    // ingress partition, remembered epoch, seq and offset (empty when none), then (offset,
    // envelope) pairs, an empty envelope marking a transient event.  Returns {epoch, routes,
    // seq..., last sequenced offset}.
    // One write per key per channel, not per event: the script gathers a channel's new entries and
    // adds them with one variadic ZADD / RPUSH per key (in chunks, under Lua's unpack limit).
    // Per-event redis.call()s were most of the script's cost (docs/benchmarks.md, change 6). The
    // recent window is a list whose last entry is the state's seq with no gap before it, so the
    // window is dropped whenever that could break: the channel starts from a state Redis did not
    // have, or the window is off.
    private const string Script = """
        local seq, last = 0, -1
        local state = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'partition', 'offset')
        local epoch = state[1]
        local recentLimit = tonumber(ARGV[2])
        if not state[2] or recentLimit == 0 then
          redis.call('DEL', KEYS[3])
        end
        if state[2] then
          seq = tonumber(state[2])
          if state[3] == ARGV[4] then
            last = tonumber(state[4])
          end
        elseif ARGV[5] ~= '' then
          -- Redis lost the channel's state but this worker remembers it: carry on, same epoch.
          epoch, seq, last = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
        elseif not epoch then
          epoch = ARGV[1]
        end
        local result = {epoch, redis.call('SMEMBERS', KEYS[4])}
        -- Explicit counts: Lua's # operator searches for the table's end on every use.
        local results, index, indexed, recent, pushed = 2, {}, 0, {}, 0
        local before = last
        for i = 8, #ARGV, 2 do
          local offset = tonumber(ARGV[i])
          results = results + 1
          if ARGV[i + 1] == '' then
            -- Transient: routed, never sequenced, never kept.
            result[results] = 0
          elseif offset <= before then
            -- Sequenced by an earlier call.
            local known = redis.call('ZSCORE', KEYS[2], ARGV[i])
            result[results] = known and tonumber(known) or -1
          elseif offset <= last then
            -- Repeated within this call (not written yet): find its seq among this call's.
            local known = -1
            for j = 2, indexed, 2 do
              if index[j] == ARGV[i] then known = index[j - 1] end
            end
            result[results] = known
          else
            seq = seq + 1
            last = offset
            index[indexed + 1] = seq
            index[indexed + 2] = ARGV[i]
            indexed = indexed + 2
            if recentLimit > 0 then
              pushed = pushed + 1
              recent[pushed] = ARGV[i + 1]
            end
            result[results] = seq
          end
        end
        local function addAll(command, key, members, count)
          for from = 1, count, 1000 do
            redis.call(command, key, unpack(members, from, math.min(from + 999, count)))
          end
        end
        addAll('ZADD', KEYS[2], index, indexed)
        addAll('RPUSH', KEYS[3], recent, pushed)
        redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', seq, 'partition', ARGV[4], 'offset', last)
        if pushed > 0 then
          redis.call('LTRIM', KEYS[3], -recentLimit, -1)
        end
        if indexed > 0 then
          redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[3]) - 1)
        end
        result[results + 1] = last
        return result
        """;

    private readonly FanoutOptions _options = options.Value;

    // What this worker last sequenced per channel: lets it carry a channel on in the same epoch
    // when Redis loses its state (a Redis restart is then no reason for clients to resync).
    private readonly Dictionary<string, RememberedState> _memory = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (bool Alive, long CheckedAt)> _liveness = new(StringComparer.Ordinal);
    private readonly List<string> _unknownNodes = [];

    // One array per distinct set of targets, so that channels routed to the same nodes share it.
    private readonly Dictionary<string, string[]> _targetSets = new(StringComparer.Ordinal);
    private readonly List<string> _live = [];
    private const int MaxTargetSets = 4_096;

    /// <summary>How many node liveness answers of the last batch came from the cache.</summary>
    public int LastBatchCacheHits { get; private set; }

    /// <summary>
    /// Sequences and routes every channel of a batch. <paramref name="records"/> holds the
    /// ingress records by batch index. Throws <see cref="RedisException"/> when Redis cannot answer.
    /// </summary>
    public async Task SequenceAsync(IReadOnlyList<ChannelWork> channels, IReadOnlyList<(long Offset, byte[] Envelope, bool Transient)> records)
    {
        var db = redis.GetDatabase();
        var batch = db.CreateBatch();
        var calls = new Task<RedisResult>[channels.Count];
        var recent = _options.RecentEventsPerChannel.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var indexLimit = _options.IndexedEventsPerChannel.ToString(System.Globalization.CultureInfo.InvariantCulture);
        // Used only by channels that have no epoch yet; one fresh name per batch is enough.
        RedisValue epochCandidate = ChannelEpoch.New();
        for (var c = 0; c < channels.Count; c++)
        {
            var work = channels[c];
            var keys = new RedisKey[]
            {
                names.ChannelStateKey(work.Channel),
                names.ChannelIndexKey(work.Channel),
                names.ChannelRecentKey(work.Channel),
                names.RouteKey(work.Channel),
            };
            var args = new RedisValue[7 + (2 * work.Records.Count)];
            args[0] = epochCandidate;
            args[1] = recent;
            args[2] = indexLimit;
            args[3] = work.Partition;
            var remembered = _memory.TryGetValue(work.Channel, out var state) && state.Partition == work.Partition;
            args[4] = remembered ? state.Epoch : string.Empty;
            args[5] = remembered ? (long)state.Seq : 0;
            args[6] = remembered ? state.Offset : -1;
            for (var i = 0; i < work.Records.Count; i++)
            {
                var (offset, envelope, transient) = records[work.Records[i]];
                args[7 + (2 * i)] = offset;
                args[8 + (2 * i)] = transient ? RedisValue.EmptyString : envelope;
            }

            calls[c] = batch.ScriptEvaluateAsync(Script, keys, args);
        }

        batch.Execute();
        await Task.WhenAll(calls);

        var now = time.GetTimestamp();
        _unknownNodes.Clear();
        LastBatchCacheHits = 0;
        var routeSets = new RedisResult[channels.Count][];
        for (var c = 0; c < channels.Count; c++)
        {
            var result = (RedisResult[])calls[c].Result!;
            var work = channels[c];
            work.Epoch = (string)result[0]!;
            routeSets[c] = (RedisResult[])result[1]!;
            work.Seqs.Clear();
            for (var i = 2; i < result.Length - 1; i++)
            {
                work.Seqs.Add((long)result[i]);
            }

            Remember(work, (long)result[^1]);

            foreach (var member in routeSets[c])
            {
                var node = (string)member!;
                if (IsFresh(node, now))
                {
                    LastBatchCacheHits++;
                }
                else if (!_unknownNodes.Contains(node))
                {
                    _unknownNodes.Add(node);
                }
            }
        }

        if (_unknownNodes.Count > 0)
        {
            await RefreshLivenessAsync(db, now);
        }

        for (var c = 0; c < channels.Count; c++)
        {
            channels[c].Targets = LiveNodes(routeSets[c]);
        }
    }

    private void Remember(ChannelWork work, long lastOffset)
    {
        var seq = work.Seqs.Count == 0 ? 0 : (ulong)Math.Max(0, work.Seqs.Max());
        if (seq == 0)
        {
            return;
        }

        if (_memory.TryGetValue(work.Channel, out var known) && known.Epoch == work.Epoch && known.Seq >= seq)
        {
            return;
        }

        if (_memory.Count >= _options.RememberedChannels && !_memory.ContainsKey(work.Channel))
        {
            // Bounded: forget an arbitrary half; those channels lose only the Redis-loss shield.
            foreach (var channel in _memory.Keys.Take(_memory.Count / 2).ToList())
            {
                _memory.Remove(channel);
            }
        }

        _memory[work.Channel] = new RememberedState(work.Epoch, seq, work.Partition, lastOffset);
    }

    private readonly record struct RememberedState(string Epoch, ulong Seq, int Partition, long Offset);

    // Only "alive" is cached: a node that comes back (e.g. after Redis lost its key) is seen at once.
    private bool IsFresh(string node, long now) =>
        _liveness.TryGetValue(node, out var entry) && entry.Alive && time.GetElapsedTime(entry.CheckedAt, now) < _options.LivenessCacheTtl;

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

    private string[] LiveNodes(RedisResult[] members)
    {
        if (members.Length == 0)
        {
            return [];
        }

        _live.Clear();
        foreach (var member in members)
        {
            var node = (string)member!;
            if (_liveness.TryGetValue(node, out var entry) && entry.Alive)
            {
                _live.Add(node);
            }
        }

        if (_live.Count == 0)
        {
            return [];
        }

        // A set's members come back in no particular order: sort, then intern by content.
        _live.Sort(StringComparer.Ordinal);
        var key = string.Join('\n', _live);
        if (!_targetSets.TryGetValue(key, out var targets))
        {
            if (_targetSets.Count >= MaxTargetSets)
            {
                _targetSets.Clear();
            }

            targets = [.. _live];
            _targetSets[key] = targets;
        }

        return targets;
    }
}
