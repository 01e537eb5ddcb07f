namespace Realtime.Gateway.Connections;

/// <summary>
/// Where one connection is in one channel: the epoch and last seq it was sent, and, while its
/// subscribe is replaying history, the live events that arrived meanwhile.
/// </summary>
/// <remarks>Guarded by the owning connection's lock: the delivery thread and the receive loop both use it.</remarks>
internal sealed class ChannelCursor
{
    /// <summary>Most live events held while a replay runs; a replay that falls further behind ends the connection as slow.</summary>
    public const int MaxBuffered = 10_000;

    public string Epoch { get; set; } = string.Empty;

    public ulong LastSeq { get; set; }

    /// <summary>
    /// Live delivery stopped because the client fell behind: it was sent <c>resync</c>
    /// (<c>slow_consumer</c>) and catches up by subscribing again with <c>since</c>.
    /// </summary>
    public bool Suspended { get; set; }

    /// <summary>Non-null while replaying: live events to send once the replay is out.</summary>
    public List<BufferedEvent>? Buffered { get; set; } = [];
}

/// <summary>A live event held while its channel replays: the frame, its position, and when it arrived (for latency).</summary>
internal readonly record struct BufferedEvent(SharedFrame Frame, ulong Seq, string Epoch, long ReceivedAt, long PublishedAtMs);
