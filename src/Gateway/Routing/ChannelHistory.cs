using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Gateway.Protocol;
using StackExchange.Redis;

namespace Realtime.Gateway.Routing;

/// <summary>One replayable event: its position and the envelope as published.</summary>
internal readonly record struct ReplayedEvent(ulong Seq, EventEnvelope Envelope);

/// <summary>
/// Reads a channel's position and its recent window, which the fanout's sequencer writes
/// (see <c>ChannelSequencer</c>): the gateway side of gap-free resume.
/// </summary>
internal sealed class ChannelHistory(IConnectionMultiplexer redis, PipelineNames names)
{
    // Creates the channel's epoch when it has none yet, so a position handed out before the
    // channel's first event stays valid after it.
    private const string HeadScript = """
        redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
        return redis.call('HMGET', KEYS[1], 'epoch', 'seq')
        """;

    /// <summary>The channel's current position: its epoch and the seq of its latest event (0 before any).</summary>
    public async Task<ChannelPosition> HeadAsync(string channel)
    {
        var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(
            HeadScript,
            [names.ChannelStateKey(channel)],
            [Guid.CreateVersion7().ToString("N")[..16]]))!;
        var seq = result[1].IsNull ? 0UL : (ulong)(long)result[1];
        return new ChannelPosition((string)result[0]!, seq);
    }

    /// <summary>
    /// The events after <paramref name="after"/> up to <paramref name="upTo"/> from the recent
    /// window, in order; null when the window no longer holds all of them.
    /// </summary>
    public async Task<List<ReplayedEvent>?> RecentAsync(string channel, ulong after, ulong upTo)
    {
        if (upTo <= after)
        {
            return [];
        }

        var entries = await redis.GetDatabase().SortedSetRangeByScoreWithScoresAsync(
            names.ChannelRecentKey(channel), after + 1, upTo);
        if (entries.Length != (int)(upTo - after) || (ulong)entries[0].Score != after + 1)
        {
            return null;
        }

        var events = new List<ReplayedEvent>(entries.Length);
        foreach (var entry in entries)
        {
            // Member: "<ingress offset>|<envelope bytes>".
            var bytes = (byte[])entry.Element!;
            var separator = Array.IndexOf(bytes, (byte)'|');
            events.Add(new ReplayedEvent((ulong)entry.Score, EventEnvelope.Parser.ParseFrom(bytes.AsSpan(separator + 1))));
        }

        return events;
    }
}
