using System.Text.Json;

namespace Realtime.Gateway.Protocol;

public enum ClientFrameType
{
    Subscribe,
    Unsubscribe,
    Publish,
    Ping,

    /// <summary>A new token for the same subject, before the current one expires.</summary>
    Refresh,
}

/// <summary>A parsed client → server frame, whatever its wire format.</summary>
/// <remarks><see cref="Data"/> points into the buffer the frame was parsed from and is valid only until it is reused.
/// <see cref="ContentType"/> is null for JSON data (always so on the JSON protocol, whose data is inline JSON).</remarks>
public readonly record struct ClientFrame(
    ClientFrameType Type,
    string? Id,
    string? Channel,
    string? Event,
    ReadOnlyMemory<byte> Data,
    string? ClientMsgId,
    ChannelPosition? Since = null,
    bool Transient = false,
    string? ContentType = null,
    string? Token = null);

/// <summary>A position in a channel: the epoch of its history and the seq of an event in it.</summary>
public readonly record struct ChannelPosition(string Epoch, ulong Seq);

/// <summary>Why a frame was rejected: the <c>error</c> frame to send (the id is echoed when it could be read).</summary>
public readonly record struct FrameError(string? Id, string Code, string Message);

/// <summary>
/// Parses JSON protocol v1 frames. Unknown fields are ignored so that newer clients can talk
/// to older nodes; missing or mistyped required fields are errors, never exceptions.
/// </summary>
public static class ClientFrameParser
{
    public const int MaxIdLength = 128;
    public const int MaxEventTypeLength = 128;
    public const int MaxDepth = 32;
    public const int MaxTokenLength = 8 * 1024;

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = MaxDepth, CommentHandling = JsonCommentHandling.Disallow };

    public static bool TryParse(ReadOnlyMemory<byte> utf8, out ClientFrame frame, out FrameError error) =>
        TryParse(utf8, impliedPublishChannel: null, out frame, out error);

    /// <summary>
    /// Parses the body of <c>POST /v1/channels/{channel}/events</c>: a publish frame whose type
    /// and channel are given by the request (<c>{"event":"...","data":...}</c>).
    /// </summary>
    public static bool TryParsePublishBody(ReadOnlyMemory<byte> utf8, string channel, out ClientFrame frame, out FrameError error) =>
        TryParse(utf8, channel, out frame, out error);

    private static bool TryParse(ReadOnlyMemory<byte> utf8, string? impliedPublishChannel, out ClientFrame frame, out FrameError error)
    {
        frame = default;
        string? type = null, id = null, channel = null, eventType = null, clientMsgId = null, token = null;
        ReadOnlyMemory<byte> data = default;
        ChannelPosition? since = null;
        var transient = false;
        string? problem = null;
        try
        {
            var reader = new Utf8JsonReader(utf8.Span, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                error = new(null, ErrorCodes.BadRequest, "A frame must be a JSON object.");
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    type = ReadString(ref reader, "type", 32, ref problem);
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    id = ReadString(ref reader, "id", MaxIdLength, ref problem);
                }
                else if (reader.ValueTextEquals("channel"u8))
                {
                    channel = ReadString(ref reader, "channel", 1024, ref problem);
                }
                else if (reader.ValueTextEquals("event"u8))
                {
                    eventType = ReadString(ref reader, "event", MaxEventTypeLength, ref problem);
                }
                else if (reader.ValueTextEquals("token"u8))
                {
                    token = ReadString(ref reader, "token", MaxTokenLength, ref problem);
                }
                else if (reader.ValueTextEquals("clientMsgId"u8))
                {
                    clientMsgId = ReadString(ref reader, "clientMsgId", MaxIdLength, ref problem);
                }
                else if (reader.ValueTextEquals("transient"u8))
                {
                    reader.Read();
                    if (reader.TokenType is JsonTokenType.True or JsonTokenType.False)
                    {
                        transient = reader.GetBoolean();
                    }
                    else
                    {
                        reader.Skip();
                        problem ??= "Field 'transient' must be a boolean.";
                    }
                }
                else if (reader.ValueTextEquals("since"u8))
                {
                    since = ReadPosition(ref reader, ref problem);
                }
                else if (reader.ValueTextEquals("data"u8))
                {
                    reader.Read();
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    data = utf8[start..(int)reader.BytesConsumed];
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                error = new(id, ErrorCodes.BadRequest, "Trailing data after the frame object.");
                return false;
            }
        }
        catch (JsonException)
        {
            error = new(id, ErrorCodes.BadRequest, "The frame is not valid JSON.");
            return false;
        }
        catch (InvalidOperationException)
        {
            // Utf8JsonReader throws this for invalid UTF-8 inside strings.
            error = new(id, ErrorCodes.BadRequest, "The frame is not valid JSON.");
            return false;
        }

        if (problem is not null)
        {
            // Reported after the whole frame was read, so the reply still carries the id.
            error = new(id, ErrorCodes.BadRequest, problem);
            return false;
        }

        if (impliedPublishChannel is not null)
        {
            type ??= "publish";
            channel = impliedPublishChannel;
        }

        ClientFrameType parsedType;
        switch (type)
        {
            case null:
                error = new(id, ErrorCodes.BadRequest, "Missing field 'type'.");
                return false;
            case "subscribe":
                parsedType = ClientFrameType.Subscribe;
                break;
            case "unsubscribe":
                parsedType = ClientFrameType.Unsubscribe;
                break;
            case "publish":
                parsedType = ClientFrameType.Publish;
                break;
            case "ping":
                parsedType = ClientFrameType.Ping;
                break;
            case "refresh":
                parsedType = ClientFrameType.Refresh;
                break;
            default:
                error = new(id, ErrorCodes.UnknownType, "Unknown frame type.");
                return false;
        }

        if (parsedType is ClientFrameType.Refresh && string.IsNullOrEmpty(token))
        {
            error = new(id, ErrorCodes.BadRequest, "Missing field 'token'.");
            return false;
        }

        if (parsedType is not (ClientFrameType.Ping or ClientFrameType.Refresh) && channel is null)
        {
            error = new(id, ErrorCodes.BadRequest, "Missing field 'channel'.");
            return false;
        }

        if (parsedType is ClientFrameType.Publish && string.IsNullOrEmpty(eventType))
        {
            error = new(id, ErrorCodes.BadRequest, "Missing field 'event'.");
            return false;
        }

        if (parsedType is ClientFrameType.Publish && data.IsEmpty)
        {
            data = "null"u8.ToArray();
        }

        frame = new ClientFrame(parsedType, id, channel, eventType, data, clientMsgId, since, transient, Token: token);
        error = default;
        return true;
    }

    /// <summary>Reads <c>{"epoch":"...","seq":N}</c>; null is accepted as "no position".</summary>
    private static ChannelPosition? ReadPosition(ref Utf8JsonReader reader, ref string? problem)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            problem ??= "Field 'since' must be an object {\"epoch\":\"...\",\"seq\":N}.";
            return null;
        }

        string? epoch = null;
        ulong? seq = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("epoch"u8))
            {
                epoch = ReadString(ref reader, "since.epoch", MaxIdLength, ref problem);
            }
            else if (reader.ValueTextEquals("seq"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number && reader.TryGetUInt64(out var value))
                {
                    seq = value;
                }
                else
                {
                    reader.Skip();
                    problem ??= "Field 'since.seq' must be a non-negative integer.";
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (epoch is null || seq is null)
        {
            problem ??= "Field 'since' needs both 'epoch' and 'seq'.";
            return null;
        }

        return new ChannelPosition(epoch, seq.Value);
    }

    /// <summary>Reads a string field; on a wrong type or length records the first problem and returns null.</summary>
    private static string? ReadString(ref Utf8JsonReader reader, string field, int maxLength, ref string? problem)
    {
        reader.Read();
        if (reader.TokenType != JsonTokenType.String)
        {
            reader.Skip();
            problem ??= $"Field '{field}' must be a string.";
            return null;
        }

        // Escapes make the raw value at most 6 bytes per character; check before decoding.
        if (reader.ValueSpan.Length > maxLength * 6 || reader.GetString() is not { } value || value.Length > maxLength)
        {
            problem ??= $"Field '{field}' is too long (at most {maxLength} characters).";
            return null;
        }

        return value;
    }
}
