using System.Buffers;
using System.Buffers.Binary;
using System.Net.WebSockets;

namespace Realtime.Gateway.Connections;

/// <summary>
/// Whole server-to-client WebSocket messages laid back to back in one pooled buffer, so a burst
/// of queued frames (a replay, a catch-up after a stall) reaches the connection's stream in one
/// write: one flush and one socket send for the burst instead of one per frame.
/// </summary>
/// <remarks>
/// Each message is one unfragmented, unmasked frame (RFC 6455 5.2: a server never masks), the
/// same bytes the WebSocket itself writes for <c>SendAsync(..., endOfMessage: true)</c> without
/// compression. Only usable where nothing transforms the payload (no permessage-deflate).
/// </remarks>
internal sealed class WebSocketFrameBatch(int limitBytes)
{
    private byte[]? _buffer;
    private int _length;

    /// <summary>Bytes laid out so far.</summary>
    public int Length => _length;

    /// <summary>The batch's byte limit: a message larger than this is never batched.</summary>
    public int LimitBytes => limitBytes;

    /// <summary>The messages laid out so far, ready to be written as they are.</summary>
    public ReadOnlyMemory<byte> Written => _buffer is null ? ReadOnlyMemory<byte>.Empty : _buffer.AsMemory(0, _length);

    /// <summary>The bytes a message of <paramref name="payloadLength"/> bytes takes on the wire: its header and its payload.</summary>
    public static int SizeOf(int payloadLength) => HeaderLength(payloadLength) + payloadLength;

    /// <summary>Appends one message; false (and nothing appended) when it would take the batch past its limit.</summary>
    public bool TryAppend(WebSocketMessageType type, ReadOnlySpan<byte> payload)
    {
        var size = SizeOf(payload.Length);
        if (_length + size > limitBytes)
        {
            return false;
        }

        _buffer ??= ArrayPool<byte>.Shared.Rent(limitBytes);
        var target = _buffer.AsSpan(_length, size);
        var header = WriteHeader(target, type, payload.Length);
        payload.CopyTo(target[header..]);
        _length += size;
        return true;
    }

    /// <summary>Empties the batch and gives its buffer back to the pool.</summary>
    public void Clear()
    {
        _length = 0;
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static int HeaderLength(int payloadLength) => payloadLength switch
    {
        < 126 => 2,
        <= ushort.MaxValue => 4,
        _ => 10,
    };

    /// <summary>FIN set, the message's opcode, no mask, and the payload length in its shortest form.</summary>
    private static int WriteHeader(Span<byte> target, WebSocketMessageType type, int payloadLength)
    {
        target[0] = (byte)(0x80 | (type == WebSocketMessageType.Binary ? 0x2 : 0x1));
        switch (payloadLength)
        {
            case < 126:
                target[1] = (byte)payloadLength;
                return 2;
            case <= ushort.MaxValue:
                target[1] = 126;
                BinaryPrimitives.WriteUInt16BigEndian(target[2..], (ushort)payloadLength);
                return 4;
            default:
                target[1] = 127;
                BinaryPrimitives.WriteUInt64BigEndian(target[2..], (ulong)payloadLength);
                return 10;
        }
    }
}
