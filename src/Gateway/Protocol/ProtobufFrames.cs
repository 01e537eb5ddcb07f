using System.Buffers;
using Google.Protobuf;
using Realtime.Contracts.V1;
using Realtime.Contracts.V1.Client;
using Realtime.Gateway.Connections;
using Wire = Realtime.Contracts.V1.Client;

namespace Realtime.Gateway.Protocol;

/// <summary>
/// Encodes server → client frames of the protobuf protocol (<see cref="FrameFormat.Protobuf"/>):
/// one <see cref="ServerMessage"/> per frame, in a pooled buffer. Event frames are encoded once
/// per event and shared, like the JSON ones; the payload bytes are the envelope's, not a copy.
/// </summary>
internal sealed class ProtobufFrames : IFrameEncoder
{
    [ThreadStatic]
    private static ProtobufFrames? s_current;

    public static ProtobufFrames ForCurrentThread() => s_current ??= new ProtobufFrames();

    public SharedFrame Connected(string connectionId, string node) =>
        Encode(new ServerMessage { Connected = new Connected { ConnectionId = connectionId, Node = node } });

    public SharedFrame Ok(string? id, string? channel, ChannelPosition? position = null) =>
        Encode(new ServerMessage { Id = id ?? string.Empty, Ok = new Ok { Channel = channel ?? string.Empty, Position = ToWire(position) } });

    public SharedFrame AuthExpiring(TimeSpan remaining) =>
        Encode(new ServerMessage { AuthExpiring = new AuthExpiring { InSeconds = (uint)Math.Max(0, Math.Floor(remaining.TotalSeconds)) } });

    public SharedFrame AuthRevoked(string reason) =>
        Encode(new ServerMessage { AuthRevoked = new AuthRevoked { Reason = reason } });

    public SharedFrame ChannelAccessRevoked(string channel) =>
        Encode(new ServerMessage { ChannelAccessRevoked = new ChannelAccessRevoked { Channel = channel } });

    public SharedFrame Resync(string channel, string reason, ChannelPosition position) =>
        Encode(new ServerMessage { Resync = new Wire.Resync { Channel = channel, Reason = reason, Position = ToWire(position) } });

    public SharedFrame Ack(string? id, string eventId, KafkaPosition position) =>
        Encode(new ServerMessage
        {
            Id = id ?? string.Empty,
            Ack = new Ack { EventId = eventId, Partition = position.Partition, Offset = position.Offset },
        });

    public SharedFrame Reconnect(string reason, TimeSpan delay) =>
        Encode(new ServerMessage { Reconnect = new Reconnect { Reason = reason, DelayMs = (uint)delay.TotalMilliseconds } });

    public SharedFrame Pong(string? id) => Encode(new ServerMessage { Id = id ?? string.Empty, Pong = new Pong() });

    public SharedFrame Error(string? id, string code, string message, TimeSpan? retryAfter = null) =>
        Encode(new ServerMessage
        {
            Id = id ?? string.Empty,
            Error = new Wire.Error
            {
                Code = code,
                Message = message,
                RetryAfterMs = retryAfter is { } wait ? (uint)Math.Ceiling(wait.TotalMilliseconds) : 0,
            },
        });

    public SharedFrame Event(EventEnvelope envelope, ulong seq, string epoch) =>
        Encode(new ServerMessage
        {
            Event = new Wire.Event
            {
                Channel = envelope.Channel,
                EventId = envelope.EventId,
                Position = seq == 0 ? null : new Position { Epoch = epoch, Seq = seq },
                Event_ = envelope.EventType,
                Data = envelope.Payload,
                ContentType = envelope.ContentType,
                PublishedAtUnixMs = envelope.PublishedAtUnixMs,
                Transient = envelope.Transient,
            },
        });

    private static Position? ToWire(ChannelPosition? position) =>
        position is { } p ? new Position { Epoch = p.Epoch, Seq = p.Seq } : null;

    private static SharedFrame Encode(ServerMessage message)
    {
        var size = message.CalculateSize();
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(size, 1));
        message.WriteTo(buffer.AsSpan(0, size));
        return SharedFrame.FromPooled(buffer, size);
    }
}
