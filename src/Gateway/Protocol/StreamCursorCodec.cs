using System.Buffers;
using System.Buffers.Text;
using Google.Protobuf;
using Realtime.Contracts.V1.Client;

namespace Realtime.Gateway.Protocol;

/// <summary>
/// The compact cursor of a stream's channel positions: an SSE event id and a long-poll cursor.
/// A <see cref="StreamCursor"/> as base64url without padding, opaque to clients.
/// </summary>
public static class StreamCursorCodec
{
    /// <summary>Longest cursor accepted (a header or query value); 200 channels of typical names fit.</summary>
    public const int MaxLength = 16 * 1024;

    public static string Encode(IEnumerable<KeyValuePair<string, ChannelPosition>> positions)
    {
        var cursor = new StreamCursor();
        foreach (var (channel, position) in positions)
        {
            cursor.Channels.Add(new ChannelCursor { Channel = channel, Position = new Position { Epoch = position.Epoch, Seq = position.Seq } });
        }

        var size = cursor.CalculateSize();
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(size, 1));
        try
        {
            cursor.WriteTo(buffer.AsSpan(0, size));
            return Base64Url.EncodeToString(buffer.AsSpan(0, size));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Decodes a cursor; false for anything that is not one (or is too long or names a channel twice).</summary>
    public static bool TryDecode(string? text, int maxChannels, out Dictionary<string, ChannelPosition> positions)
    {
        positions = new Dictionary<string, ChannelPosition>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(text) || text.Length > MaxLength)
        {
            return false;
        }

        StreamCursor cursor;
        try
        {
            cursor = StreamCursor.Parser.ParseFrom(Base64Url.DecodeFromChars(text));
        }
        catch (Exception e) when (e is FormatException or InvalidProtocolBufferException)
        {
            return false;
        }

        if (cursor.Channels.Count > maxChannels)
        {
            return false;
        }

        foreach (var entry in cursor.Channels)
        {
            if (entry.Position is not { Epoch.Length: > 0 } position || !positions.TryAdd(entry.Channel, new ChannelPosition(position.Epoch, position.Seq)))
            {
                return false;
            }
        }

        return true;
    }
}
