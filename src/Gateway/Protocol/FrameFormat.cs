using Realtime.Contracts.V1;
using Realtime.Gateway.Connections;

namespace Realtime.Gateway.Protocol;

/// <summary>How a connection's frames are encoded: chosen per WebSocket by its subprotocol.</summary>
internal enum FrameFormat
{
    /// <summary><c>realtime.v1.json</c> (or no subprotocol): one JSON object per text message.</summary>
    Json,

    /// <summary><c>realtime.v1.proto</c>: one <c>realtime.v1.client</c> message per binary message.</summary>
    Protobuf,
}

/// <summary>Encodes the server → client frames of one wire format into pooled, shareable buffers.</summary>
/// <remarks>Instances are per thread (see <see cref="FrameEncoders.ForCurrentThread"/>); never share one across threads.</remarks>
internal interface IFrameEncoder
{
    SharedFrame Connected(string connectionId, string node);

    /// <summary>A request took effect; <paramref name="channel"/> is null for requests about no channel (refresh).</summary>
    SharedFrame Ok(string? id, string? channel, ChannelPosition? position = null);

    /// <summary>The connection's token expires in <paramref name="remaining"/>: refresh it, or be closed.</summary>
    SharedFrame AuthExpiring(TimeSpan remaining);

    /// <summary>The subject's sessions were revoked; the connection closes next.</summary>
    SharedFrame AuthRevoked(string reason);

    /// <summary>The subscription to <paramref name="channel"/> ended: the subject may no longer use it.</summary>
    SharedFrame ChannelAccessRevoked(string channel);

    /// <summary>The client's position cannot be served: it must reload the channel's state and continue from the fresh position given.</summary>
    SharedFrame Resync(string channel, string reason, ChannelPosition position);

    SharedFrame Ack(string? id, string eventId, KafkaPosition position);

    /// <summary>The node is going away: reconnect (to any node, resuming) after <paramref name="delay"/>.</summary>
    SharedFrame Reconnect(string reason, TimeSpan delay);

    SharedFrame Pong(string? id);

    SharedFrame Error(string? id, string code, string message, TimeSpan? retryAfter = null);

    /// <summary>The frame every subscriber of the event's channel on this wire format receives.</summary>
    SharedFrame Event(EventEnvelope envelope, ulong seq, string epoch);
}

internal static class FrameEncoders
{
    public static IFrameEncoder ForCurrentThread(FrameFormat format) => format switch
    {
        FrameFormat.Protobuf => ProtobufFrames.ForCurrentThread(),
        _ => ServerFrames.ForCurrentThread(),
    };
}
