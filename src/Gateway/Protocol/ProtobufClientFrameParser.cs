using Google.Protobuf;
using Realtime.Contracts.V1.Client;

namespace Realtime.Gateway.Protocol;

/// <summary>
/// Parses client → server frames of the protobuf protocol into the same <see cref="ClientFrame"/>
/// the JSON protocol yields, with the same limits, so both are handled by one code path.
/// Garbage and missing fields are errors, never exceptions.
/// </summary>
public static class ProtobufClientFrameParser
{
    public const int MaxContentTypeLength = 128;

    public static bool TryParse(ReadOnlyMemory<byte> bytes, out ClientFrame frame, out FrameError error)
    {
        frame = default;
        ClientMessage message;
        try
        {
            message = ClientMessage.Parser.ParseFrom(bytes.Span);
        }
        catch (InvalidProtocolBufferException)
        {
            error = new(null, ErrorCodes.BadRequest, "The frame is not a valid realtime.v1.client.ClientMessage.");
            return false;
        }

        var id = message.Id.Length == 0 ? null : message.Id;
        if (id is { Length: > ClientFrameParser.MaxIdLength })
        {
            error = new(null, ErrorCodes.BadRequest, $"Field 'id' is too long (at most {ClientFrameParser.MaxIdLength} characters).");
            return false;
        }

        switch (message.KindCase)
        {
            case ClientMessage.KindOneofCase.Ping:
                frame = new ClientFrame(ClientFrameType.Ping, id, null, null, default, null);
                break;
            case ClientMessage.KindOneofCase.Subscribe:
                var since = message.Subscribe.Since;
                if (since is not null && (since.Epoch.Length is 0 or > ClientFrameParser.MaxIdLength))
                {
                    error = new(id, ErrorCodes.BadRequest, "Field 'since' needs an epoch.");
                    return false;
                }

                frame = new ClientFrame(ClientFrameType.Subscribe, id, message.Subscribe.Channel, null, default, null,
                    since is null ? null : new ChannelPosition(since.Epoch, since.Seq));
                break;
            case ClientMessage.KindOneofCase.Refresh:
                if (message.Refresh.Token.Length is 0 or > ClientFrameParser.MaxTokenLength)
                {
                    error = new(id, ErrorCodes.BadRequest, "Field 'token' is missing or too long.");
                    return false;
                }

                frame = new ClientFrame(ClientFrameType.Refresh, id, null, null, default, null, Token: message.Refresh.Token);
                break;
            case ClientMessage.KindOneofCase.Unsubscribe:
                frame = new ClientFrame(ClientFrameType.Unsubscribe, id, message.Unsubscribe.Channel, null, default, null);
                break;
            case ClientMessage.KindOneofCase.Publish:
                var publish = message.Publish;
                if (publish.Event.Length is 0 or > ClientFrameParser.MaxEventTypeLength)
                {
                    error = new(id, ErrorCodes.BadRequest, $"Field 'event' must hold 1-{ClientFrameParser.MaxEventTypeLength} characters.");
                    return false;
                }

                if (publish.ClientMsgId.Length > ClientFrameParser.MaxIdLength || publish.ContentType.Length > MaxContentTypeLength)
                {
                    error = new(id, ErrorCodes.BadRequest, "Field 'client_msg_id' or 'content_type' is too long.");
                    return false;
                }

                frame = new ClientFrame(ClientFrameType.Publish, id, publish.Channel, publish.Event, publish.Data.Memory,
                    publish.ClientMsgId.Length == 0 ? null : publish.ClientMsgId, null, publish.Transient,
                    publish.ContentType.Length == 0 ? null : publish.ContentType);
                break;
            default:
                error = new(id, ErrorCodes.UnknownType, "The message sets none of the known kinds.");
                return false;
        }

        if (frame.Type is not (ClientFrameType.Ping or ClientFrameType.Refresh) && string.IsNullOrEmpty(frame.Channel))
        {
            frame = default;
            error = new(id, ErrorCodes.BadRequest, "Missing field 'channel'.");
            return false;
        }

        error = default;
        return true;
    }
}
