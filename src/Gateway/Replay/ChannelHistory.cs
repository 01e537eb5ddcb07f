using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Gateway.Protocol;
using StackExchange.Redis;

namespace Realtime.Gateway.Replay;

/// <summary>One replayable event: its position and the envelope as published.</summary>
internal readonly record struct ReplayedEvent(ulong Seq, EventEnvelope Envelope);

/// <summary>
/// The events after a position, or why they cannot be given (a <c>resync</c> reason). A
/// subscribe's replay from the log gives its first page in <see cref="Events"/> and the pages
/// after it in <see cref="Rest"/> (which the caller disposes); every other read gives them all.
/// </summary>
internal readonly record struct ReplayResult(List<ReplayedEvent>? Events, string? Refusal, LogReplay? Rest = null)
{
    public static ReplayResult Refused(string reason) => new(null, reason);
}

/// <summary>
/// The gateway side of gap-free resume: a channel's position, and the events after a position,
/// from the recent window in Redis when it still holds them, else from the ingress log located
/// through the channel's seq → offset index (as far back as Kafka retains).
/// </summary>
internal sealed class ChannelHistory(
    IConnectionMultiplexer redis,
    PipelineNames names,
    IngressReader ingress,
    Telemetry.GatewayMetrics metrics,
    IOptions<GatewayOptions> options)
{
    public const string BeyondRetention = "beyond_retention";
    public const string BeyondReplayLimit = "beyond_replay_limit";

    // Creates the channel's epoch when it has none yet, so a position handed out before the
    // channel's first event stays valid after it.
    private const string HeadScript = """
        redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
        return redis.call('HMGET', KEYS[1], 'epoch', 'seq')
        """;

    // The window is a list whose last entry has the state's seq, with no gap before it (the
    // fanout keeps it so); read together with that seq so both come from one moment. Nil when the
    // window does not cover the whole range.  ARGV: first seq wanted, last seq wanted.
    private const string RecentScript = """
        local head = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
        local length = redis.call('LLEN', KEYS[2])
        local first, from, to = head - length + 1, tonumber(ARGV[1]), tonumber(ARGV[2])
        if length == 0 or from < first or to > head then
          return false
        end
        return redis.call('LRANGE', KEYS[2], from - first, to - first)
        """;

    // A subscribe's whole Redis read in one round trip: the head (HeadScript) and, when the client
    // resumes within the current epoch, the events after its position from the window
    // (RecentScript). Returns {epoch, seq, events}: events is nil when there is nothing to replay
    // from here (no position, another epoch, a position past the head, or a window that does not
    // reach back to it), an empty list when the client is already at the head.
    // ARGV: new epoch, the client's epoch ('' for none), the first seq wanted (0 for none).
    private const string SubscribeScript = """
        redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
        local state = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
        local head, from = tonumber(state[2] or '0'), tonumber(ARGV[3])
        if ARGV[2] ~= state[1] or from == 0 or from > head + 1 then
          return {state[1], state[2], false}
        end
        if from == head + 1 then
          return {state[1], state[2], {}}
        end
        local length = redis.call('LLEN', KEYS[2])
        local first = head - length + 1
        if length == 0 or from < first then
          return {state[1], state[2], false}
        end
        return {state[1], state[2], redis.call('LRANGE', KEYS[2], from - first, head - first)}
        """;

    private readonly GatewayOptions _options = options.Value;

    /// <summary>
    /// A subscribe's read: the channel's head and, for a client that resumes from
    /// <paramref name="since"/> within the head's epoch, the events after it up to the head
    /// (from the recent window in the same Redis round trip, else from the ingress log). The
    /// replay's <see cref="ReplayResult.Events"/> is null when there is no position to serve or it
    /// cannot be served (<see cref="ReplayResult.Refusal"/> says why when it is known).
    /// </summary>
    public async Task<(ChannelPosition Head, ReplayResult Replay)> SubscribeReadAsync(string channel, ChannelPosition? since)
    {
        var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(
            SubscribeScript,
            [names.ChannelStateKey(channel), names.ChannelRecentKey(channel)],
            [ChannelEpoch.New(), since?.Epoch ?? string.Empty, since is { } s ? s.Seq + 1 : 0]))!;
        var head = new ChannelPosition((string)result[0]!, result[1].IsNull ? 0UL : (ulong)(long)result[1]);
        if (since is not { } from || from.Epoch != head.Epoch || from.Seq > head.Seq)
        {
            return (head, default);
        }

        if (head.Seq - from.Seq > (ulong)_options.MaxReplayEvents)
        {
            return (head, ReplayResult.Refused(BeyondReplayLimit));
        }

        if (!result[2].IsNull && ToEvents((RedisResult[])result[2]!, from.Seq, head.Seq) is { } recent)
        {
            if (recent.Count > 0)
            {
                metrics.Replay("redis", recent.Count);
            }

            return (head, new ReplayResult(recent, null));
        }

        return (head, await FromLogAsync(channel, from.Seq, head.Seq, streamed: true));
    }

    /// <summary>The channel's current position: its epoch and the seq of its latest event (0 before any).</summary>
    public async Task<ChannelPosition> HeadAsync(string channel)
    {
        var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(
            HeadScript,
            [names.ChannelStateKey(channel)],
            [ChannelEpoch.New()]))!;
        var seq = result[1].IsNull ? 0UL : (ulong)(long)result[1];
        return new ChannelPosition((string)result[0]!, seq);
    }

    /// <summary>The events after <paramref name="after"/> up to <paramref name="upTo"/>, in order.</summary>
    public async Task<ReplayResult> ReadAsync(string channel, ulong after, ulong upTo)
    {
        if (upTo <= after)
        {
            return new ReplayResult([], null);
        }

        if (upTo - after > (ulong)_options.MaxReplayEvents)
        {
            return ReplayResult.Refused(BeyondReplayLimit);
        }

        var recent = await RecentAsync(channel, after, upTo);
        if (recent is not null)
        {
            metrics.Replay("redis", recent.Count);
            return new ReplayResult(recent, null);
        }

        return await FromLogAsync(channel, after, upTo, streamed: false);
    }

    /// <summary>
    /// The events after <paramref name="after"/> up to <paramref name="upTo"/> from the ingress
    /// log, located through the channel's index a page at a time. <paramref name="streamed"/>:
    /// give the first page and read the rest ahead as it is taken (<see cref="ReplayResult.Rest"/>);
    /// otherwise all of them. Refused when the log or its index no longer reaches back that far
    /// (checked on the first page, before anything is given).
    /// </summary>
    private async Task<ReplayResult> FromLogAsync(string channel, ulong after, ulong upTo, bool streamed)
    {
        var partition = await redis.GetDatabase().HashGetAsync(names.ChannelStateKey(channel), "partition");
        if (partition.IsNull)
        {
            return ReplayResult.Refused(BeyondRetention);
        }

        LogReplay? replay = new LogReplay((pages, stop) => ReadLogAsync(channel, (int)partition, after, upTo, pages, stop));
        try
        {
            var first = await replay.NextAsync(CancellationToken.None) ?? [];
            if (streamed)
            {
                var result = new ReplayResult(first, null, replay);
                replay = null;
                return result;
            }

            while (await replay.NextAsync(CancellationToken.None) is { } page)
            {
                first.AddRange(page);
            }

            return new ReplayResult(first, null);
        }
        catch (ReplayRefusedException refused)
        {
            return ReplayResult.Refused(refused.Reason);
        }
        finally
        {
            if (replay is not null)
            {
                await replay.DisposeAsync();
            }
        }
    }

    /// <summary>Reads the log's pages in order: a page of the index (seq → offset), then those records of the ingress partition.</summary>
    private async Task ReadLogAsync(string channel, int partition, ulong after, ulong upTo, System.Threading.Channels.ChannelWriter<List<ReplayedEvent>> pages, CancellationToken stop)
    {
        var db = redis.GetDatabase();
        var pageEvents = (ulong)_options.ReplayPageEvents;
        var offsets = new long[Math.Min(pageEvents, upTo - after)];
        for (var from = after + 1; from <= upTo; from += pageEvents)
        {
            stop.ThrowIfCancellationRequested();
            var to = Math.Min(upTo, from + pageEvents - 1);
            var count = (int)(to - from + 1);
            var indexed = await db.SortedSetRangeByScoreWithScoresAsync(names.ChannelIndexKey(channel), from, to);
            if (indexed.Length != count || (ulong)indexed[0].Score != from)
            {
                // The index no longer reaches back that far.
                throw new ReplayRefusedException(BeyondRetention);
            }

            for (var i = 0; i < count; i++)
            {
                offsets[i] = (long)indexed[i].Element;
            }

            // Blocking: this runs on the replay's own task, never on the request path.
            var envelopes = ingress.Read(partition, new ArraySegment<long>(offsets, 0, count), _options.ReplayTimeout)
                ?? throw new ReplayRefusedException(BeyondRetention);
            var page = new List<ReplayedEvent>(count);
            for (var i = 0; i < count; i++)
            {
                page.Add(new ReplayedEvent(from + (ulong)i, envelopes[i]));
            }

            metrics.Replay("kafka", page.Count);
            await pages.WriteAsync(page, stop);
        }
    }

    /// <summary>The events after <paramref name="after"/> up to <paramref name="upTo"/> from the recent window; null when it no longer holds all of them.</summary>
    private async Task<List<ReplayedEvent>?> RecentAsync(string channel, ulong after, ulong upTo)
    {
        var result = await redis.GetDatabase().ScriptEvaluateAsync(
            RecentScript,
            [names.ChannelStateKey(channel), names.ChannelRecentKey(channel)],
            [after + 1, upTo]);
        return result.IsNull ? null : ToEvents((RedisResult[])result!, after, upTo);
    }

    /// <summary>Window entries as the events after <paramref name="after"/>; null unless they are exactly those up to <paramref name="upTo"/>.</summary>
    private static List<ReplayedEvent>? ToEvents(RedisResult[] entries, ulong after, ulong upTo)
    {
        if (entries.Length != (int)(upTo - after))
        {
            return null;
        }

        var events = new List<ReplayedEvent>(entries.Length);
        for (var i = 0; i < entries.Length; i++)
        {
            events.Add(new ReplayedEvent(after + 1 + (ulong)i, EventEnvelope.Parser.ParseFrom((byte[])entries[i]!)));
        }

        return events;
    }
}
