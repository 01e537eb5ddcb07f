using Google.Protobuf;
using Realtime.Contracts.V1.Client;
using Realtime.Gateway.Protocol;

namespace Realtime.Gateway.Tests.Protocol;

public sealed class ProtobufClientFrameParserTests
{
    private static (bool Ok, ClientFrame Frame, FrameError Error) Parse(ClientMessage message) => Parse(message.ToByteArray());

    private static (bool Ok, ClientFrame Frame, FrameError Error) Parse(byte[] bytes)
    {
        var ok = ProtobufClientFrameParser.TryParse(bytes, out var frame, out var error);
        return (ok, frame, error);
    }

    [Fact]
    public void Parses_a_resuming_subscribe_into_the_same_frame_as_json()
    {
        var (ok, frame, _) = Parse(new ClientMessage { Id = "s1", Subscribe = new Subscribe { Channel = "room:1", Since = new Position { Epoch = "e1", Seq = 41 } } });
        Assert.True(ok);
        Assert.Equal(ClientFrameType.Subscribe, frame.Type);
        Assert.Equal(("s1", "room:1"), (frame.Id, frame.Channel));
        Assert.Equal(new ChannelPosition("e1", 41), frame.Since);
    }

    [Fact]
    public void Parses_a_publish_with_its_content_type_and_keeps_the_data_bytes()
    {
        var (ok, frame, _) = Parse(new ClientMessage
        {
            Publish = new Publish { Channel = "room:1", Event = "blob", Data = ByteString.CopyFrom(1, 2, 3), ContentType = "application/octet-stream", ClientMsgId = "m1", Transient = true },
        });
        Assert.True(ok);
        Assert.Null(frame.Id);
        Assert.Equal(ClientFrameType.Publish, frame.Type);
        Assert.Equal([1, 2, 3], frame.Data.ToArray());
        Assert.Equal(("application/octet-stream", "m1", true), (frame.ContentType, frame.ClientMsgId, frame.Transient));
    }

    [Fact]
    public void An_empty_content_type_means_json()
    {
        var (ok, frame, _) = Parse(new ClientMessage { Publish = new Publish { Channel = "room:1", Event = "e", Data = ByteString.CopyFromUtf8("1") } });
        Assert.True(ok);
        Assert.Null(frame.ContentType);
    }

    [Fact]
    public void Parses_a_ping()
    {
        var (ok, frame, _) = Parse(new ClientMessage { Id = "p", Ping = new Ping() });
        Assert.True(ok);
        Assert.Equal(ClientFrameType.Ping, frame.Type);
    }

    public static TheoryData<byte[], string> Refused => new()
    {
        { [0xFF, 0xFF, 0xFF], ErrorCodes.BadRequest },
        { new ClientMessage { Id = "x" }.ToByteArray(), ErrorCodes.UnknownType },
        { new ClientMessage { Subscribe = new Subscribe() }.ToByteArray(), ErrorCodes.BadRequest },
        { new ClientMessage { Subscribe = new Subscribe { Channel = "room:1", Since = new Position { Seq = 3 } } }.ToByteArray(), ErrorCodes.BadRequest },
        { new ClientMessage { Publish = new Publish { Channel = "room:1" } }.ToByteArray(), ErrorCodes.BadRequest },
        { new ClientMessage { Publish = new Publish { Channel = "room:1", Event = new string('e', 129) } }.ToByteArray(), ErrorCodes.BadRequest },
        { new ClientMessage { Id = new string('i', 129), Ping = new Ping() }.ToByteArray(), ErrorCodes.BadRequest },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void Refuses_garbage_and_incomplete_messages_with_a_code_never_an_exception(byte[] bytes, string code)
    {
        var (ok, _, error) = Parse(bytes);
        Assert.False(ok);
        Assert.Equal(code, error.Code);
    }
}
