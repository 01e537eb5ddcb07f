using Realtime.Contracts.V1;
using Realtime.Gateway.Protocol;

namespace Realtime.Gateway.Connections;

/// <summary>
/// One delivered event on its way to the node's subscribers: encoded at most once per wire
/// format, on first use, and shared by every subscriber of that format.
/// </summary>
/// <remarks>
/// Used by the single dispatch thread only (the delivery consumer), so the lazy encoding needs
/// no lock. Subscribers that keep a frame take their own reference; disposing releases the
/// encoder's.
/// </remarks>
internal sealed class OutgoingEvent(EventEnvelope envelope, ulong seq, string epoch) : IDisposable
{
    private SharedFrame? _json;
    private SharedFrame? _protobuf;

    public EventEnvelope Envelope { get; } = envelope;

    /// <summary>The event's position in <see cref="Epoch"/>; 0 for transient events.</summary>
    public ulong Seq { get; } = seq;

    public string Epoch { get; } = epoch;

    /// <summary>When this node read the event from its delivery topic (<see cref="System.Diagnostics.Stopwatch"/> timestamp).</summary>
    public long ReceivedAt { get; } = System.Diagnostics.Stopwatch.GetTimestamp();

    public SharedFrame Frame(FrameFormat format) => format switch
    {
        FrameFormat.Protobuf => _protobuf ??= ProtobufFrames.ForCurrentThread().Event(Envelope, Seq, Epoch),
        _ => _json ??= ServerFrames.ForCurrentThread().Event(Envelope, Seq, Epoch),
    };

    public void Dispose()
    {
        _json?.Release();
        _json = null;
        _protobuf?.Release();
        _protobuf = null;
    }
}
