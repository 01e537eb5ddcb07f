using Realtime.Gateway.Protocol;

namespace Realtime.Gateway.Replay;

/// <summary>One page of a channel's history, or the resync that replaces it.</summary>
internal sealed record HistoryPage(
    ChannelPosition Head,
    IReadOnlyList<ReplayedEvent> Events,
    bool More,
    (string Reason, ChannelPosition Position)? Resync);

/// <summary>
/// The history read shared by the HTTP and gRPC entry points: the events after a position, a
/// page at a time, with the same resync rules as a resuming subscribe.
/// </summary>
internal sealed class HistoryQuery(ChannelHistory history)
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1_000;

    /// <summary>Reads after <paramref name="epoch"/>/<paramref name="since"/>; an empty epoch means "the current one".</summary>
    public async Task<HistoryPage> ReadAsync(string channel, string? epoch, ulong since, int limit)
    {
        var head = await history.HeadAsync(channel);
        if (!string.IsNullOrEmpty(epoch) && epoch != head.Epoch)
        {
            return new HistoryPage(head, [], false, ("epoch_changed", head));
        }

        if (since > head.Seq)
        {
            return new HistoryPage(head, [], false, ("unknown_position", head));
        }

        var upTo = Math.Min(head.Seq, since + (ulong)limit);
        var result = await history.ReadAsync(channel, since, upTo);
        if (result.Events is null)
        {
            return new HistoryPage(head, [], false, (result.Refusal ?? ChannelHistory.BeyondRetention, head));
        }

        return new HistoryPage(head, result.Events, upTo < head.Seq, null);
    }
}
