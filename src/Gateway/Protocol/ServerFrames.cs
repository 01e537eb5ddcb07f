using System.Text.Json;
using Realtime.Contracts.V1;
using Realtime.Gateway.Connections;

namespace Realtime.Gateway.Protocol;

/// <summary>
/// Encodes server → client frames of the JSON protocol v1 (<see cref="FrameFormat.Json"/>) into pooled buffers. Event frames
/// are encoded once per event by the delivery path and shared by every recipient; control
/// frames (ok, ack, error, pong) are per connection.
/// </summary>
/// <remarks>Not thread-safe: each thread that encodes owns an instance (see <see cref="ForCurrentThread"/>),
/// which lives as long as its thread, so it is never disposed.</remarks>
#pragma warning disable CA1001 // Thread-lifetime instance; its writer holds no unmanaged resource.
internal sealed class ServerFrames : IFrameEncoder
#pragma warning restore CA1001
{
    private const string JsonContentType = "application/json";

    [ThreadStatic]
    private static ServerFrames? s_current;

    private readonly PooledBufferWriter _buffer = new();
    private readonly Utf8JsonWriter _writer;

    private ServerFrames()
    {
        _writer = new Utf8JsonWriter(_buffer, new JsonWriterOptions { SkipValidation = true, Indented = false });
    }

    public static ServerFrames ForCurrentThread() => s_current ??= new ServerFrames();

    public SharedFrame Connected(string connectionId, string node)
    {
        Begin("connected");
        _writer.WriteString("connectionId"u8, connectionId);
        _writer.WriteString("node"u8, node);
        return End();
    }

    public SharedFrame Ok(string? id, string? channel, ChannelPosition? position = null)
    {
        Begin("ok");
        WriteId(id);
        if (channel is not null)
        {
            _writer.WriteString("channel"u8, channel);
        }

        if (position is { } p)
        {
            _writer.WriteString("epoch"u8, p.Epoch);
            _writer.WriteNumber("seq"u8, p.Seq);
        }

        return End();
    }

    /// <summary>The client's position cannot be served: it must reload the channel's state and continue from the fresh position given.</summary>
    public SharedFrame Resync(string channel, string reason, ChannelPosition position)
    {
        Begin("resync");
        _writer.WriteString("channel"u8, channel);
        _writer.WriteString("reason"u8, reason);
        _writer.WriteString("epoch"u8, position.Epoch);
        _writer.WriteNumber("seq"u8, position.Seq);
        return End();
    }

    public SharedFrame Ack(string? id, string eventId, KafkaPosition position)
    {
        Begin("ack");
        WriteId(id);
        _writer.WriteString("eventId"u8, eventId);
        _writer.WriteStartObject("position"u8);
        _writer.WriteNumber("partition"u8, position.Partition);
        _writer.WriteNumber("offset"u8, position.Offset);
        _writer.WriteEndObject();
        return End();
    }

    /// <summary>The node is going away: reconnect (to any node, resuming with <c>since</c>) after <paramref name="delay"/>.</summary>
    public SharedFrame Reconnect(string reason, TimeSpan delay)
    {
        Begin("reconnect");
        _writer.WriteString("reason"u8, reason);
        _writer.WriteNumber("delayMs"u8, (long)delay.TotalMilliseconds);
        return End();
    }

    public SharedFrame AuthExpiring(TimeSpan remaining)
    {
        Begin("auth.expiring");
        _writer.WriteNumber("in"u8, (long)Math.Max(0, Math.Floor(remaining.TotalSeconds)));
        return End();
    }

    public SharedFrame AuthRevoked(string reason)
    {
        Begin("auth.revoked");
        _writer.WriteString("reason"u8, reason);
        return End();
    }

    public SharedFrame ChannelAccessRevoked(string channel)
    {
        Begin("channel.access.revoked");
        _writer.WriteString("channel"u8, channel);
        return End();
    }

    public SharedFrame Pong(string? id)
    {
        Begin("pong");
        WriteId(id);
        return End();
    }

    public SharedFrame Error(string? id, string code, string message, TimeSpan? retryAfter = null)
    {
        Begin("error");
        WriteId(id);
        _writer.WriteString("code"u8, code);
        _writer.WriteString("message"u8, message);
        if (retryAfter is { } wait)
        {
            _writer.WriteNumber("retryAfterMs"u8, (long)Math.Ceiling(wait.TotalMilliseconds));
        }

        return End();
    }

    /// <summary>The frame every subscriber of the event's channel receives.</summary>
    public SharedFrame Event(EventEnvelope envelope, ulong seq, string epoch)
    {
        Begin("event");
        _writer.WriteString("channel"u8, envelope.Channel);
        _writer.WriteString("eventId"u8, envelope.EventId);
        if (seq != 0)
        {
            _writer.WriteNumber("seq"u8, seq);
            _writer.WriteString("epoch"u8, epoch);
        }
        else if (envelope.Transient)
        {
            _writer.WriteBoolean("transient"u8, true);
        }

        _writer.WriteString("event"u8, envelope.EventType);
        if (IsJson(envelope.ContentType))
        {
            _writer.WritePropertyName("data"u8);
            // Validated as JSON when it was published; inlined without re-parsing.
            _writer.WriteRawValue(envelope.Payload.Span, skipInputValidation: true);
        }
        else
        {
            _writer.WriteBase64String("data"u8, envelope.Payload.Span);
            _writer.WriteString("encoding"u8, "base64"u8);
            _writer.WriteString("contentType"u8, envelope.ContentType);
        }

        _writer.WriteString("publishedAt"u8, DateTimeOffset.FromUnixTimeMilliseconds(envelope.PublishedAtUnixMs));
        return End();
    }

    public static bool IsJson(string contentType) =>
        contentType.Length == 0 || contentType.Equals(JsonContentType, StringComparison.OrdinalIgnoreCase);

    private void Begin(string type)
    {
        _writer.Reset(_buffer);
        _writer.WriteStartObject();
        _writer.WriteString("type"u8, type);
    }

    private void WriteId(string? id)
    {
        if (id is not null)
        {
            _writer.WriteString("id"u8, id);
        }
    }

    private SharedFrame End()
    {
        _writer.WriteEndObject();
        _writer.Flush();
        return _buffer.Detach();
    }
}
