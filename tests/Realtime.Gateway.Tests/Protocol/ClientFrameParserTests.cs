using System.Text;
using Realtime.Gateway.Protocol;

namespace Realtime.Gateway.Tests.Protocol;

public sealed class ClientFrameParserTests
{
    private static (bool Ok, ClientFrame Frame, FrameError Error) Parse(string json)
    {
        var ok = ClientFrameParser.TryParse(Encoding.UTF8.GetBytes(json), out var frame, out var error);
        return (ok, frame, error);
    }

    [Fact]
    public void Parses_a_subscribe()
    {
        var (ok, frame, _) = Parse("""{"type":"subscribe","id":"r1","channel":"room:1"}""");
        Assert.True(ok);
        Assert.Equal(ClientFrameType.Subscribe, frame.Type);
        Assert.Equal("r1", frame.Id);
        Assert.Equal("room:1", frame.Channel);
    }

    [Fact]
    public void Parses_a_publish_and_keeps_data_as_raw_json()
    {
        var (ok, frame, _) = Parse("""{"type":"publish","id":"r3","channel":"room:1","event":"message.created","data":{"text":"hi","n":[1,2]},"clientMsgId":"m1"}""");
        Assert.True(ok);
        Assert.Equal(ClientFrameType.Publish, frame.Type);
        Assert.Equal("message.created", frame.Event);
        Assert.Equal("m1", frame.ClientMsgId);
        Assert.Equal("""{"text":"hi","n":[1,2]}""", Encoding.UTF8.GetString(frame.Data.Span));
    }

    [Theory]
    [InlineData("""{"type":"publish","channel":"c","event":"e","data":"s"}""", "\"s\"")]
    [InlineData("""{"type":"publish","channel":"c","event":"e","data":12.5}""", "12.5")]
    [InlineData("""{"type":"publish","channel":"c","event":"e"}""", "null")]
    public void Publish_data_may_be_any_json_value(string json, string expected)
    {
        var (ok, frame, _) = Parse(json);
        Assert.True(ok);
        Assert.Equal(expected, Encoding.UTF8.GetString(frame.Data.Span));
    }

    [Fact]
    public void Unknown_fields_are_ignored()
    {
        var (ok, frame, _) = Parse("""{"type":"ping","id":"p","future":{"deep":[1,{"x":2}]},"flag":true}""");
        Assert.True(ok);
        Assert.Equal(ClientFrameType.Ping, frame.Type);
    }

    [Theory]
    [InlineData("not json", "bad_request", null)]
    [InlineData("[1,2]", "bad_request", null)]
    [InlineData("""{"id":"x"}""", "bad_request", "x")]
    [InlineData("""{"type":5,"id":"x"}""", "bad_request", "x")]
    [InlineData("""{"type":"teleport","id":"x"}""", "unknown_type", "x")]
    [InlineData("""{"type":"subscribe","id":"x"}""", "bad_request", "x")]
    [InlineData("""{"type":"subscribe","id":"x","channel":7}""", "bad_request", "x")]
    [InlineData("""{"type":"publish","id":"x","channel":"c"}""", "bad_request", "x")]
    [InlineData("""{"type":"ping"} {"type":"ping"}""", "bad_request", null)]
    [InlineData("""{"type":"ping",""", "bad_request", null)]
    public void Invalid_frames_get_an_error_code_and_never_throw(string json, string code, string? id)
    {
        var (ok, _, error) = Parse(json);
        Assert.False(ok);
        Assert.Equal(code, error.Code);
        Assert.Equal(id, error.Id);
        Assert.False(string.IsNullOrEmpty(error.Message));
    }

    [Fact]
    public void Deep_nesting_is_refused()
    {
        var deep = new string('[', 100) + new string(']', 100);
        var (ok, _, error) = Parse($$"""{"type":"publish","channel":"c","event":"e","data":{{deep}}}""");
        Assert.False(ok);
        Assert.Equal(ErrorCodes.BadRequest, error.Code);
    }

    [Fact]
    public void Overlong_ids_are_refused()
    {
        var (ok, _, error) = Parse($$"""{"type":"ping","id":"{{new string('a', 500)}}"}""");
        Assert.False(ok);
        Assert.Equal(ErrorCodes.BadRequest, error.Code);
    }

    [Fact]
    public void Invalid_utf8_is_an_error_not_an_exception()
    {
        byte[] bytes = [.. """{"type":"subscribe","channel":" """u8, 0xC3, 0x28, .. "\"}"u8];
        Assert.False(ClientFrameParser.TryParse(bytes, out _, out var error));
        Assert.Equal(ErrorCodes.BadRequest, error.Code);
    }

    [Fact]
    public void Random_bytes_never_throw_and_always_yield_a_known_error_code()
    {
        string[] known = [ErrorCodes.BadRequest, ErrorCodes.UnknownType];
        var random = new Random(42);
        var buffer = new byte[256];
        for (var i = 0; i < 20_000; i++)
        {
            var length = random.Next(buffer.Length);
            random.NextBytes(buffer.AsSpan(0, length));
            if (i % 2 == 0 && length > 2)
            {
                buffer[0] = (byte)'{';
            }

            if (!ClientFrameParser.TryParse(buffer.AsMemory(0, length), out _, out var error))
            {
                Assert.Contains(error.Code, known);
            }
        }
    }

    [Fact]
    public void A_publish_body_takes_its_type_and_channel_from_the_request()
    {
        var ok = ClientFrameParser.TryParsePublishBody(Encoding.UTF8.GetBytes("""{"event":"msg","data":{"n":1},"clientMsgId":"k"}"""), "room:9", out var frame, out _);
        Assert.True(ok);
        Assert.Equal((ClientFrameType.Publish, "room:9", "msg", "k"), (frame.Type, frame.Channel, frame.Event, frame.ClientMsgId));
        Assert.Equal("""{"n":1}""", Encoding.UTF8.GetString(frame.Data.Span));
    }

    [Fact]
    public void A_publish_body_without_an_event_is_refused()
    {
        Assert.False(ClientFrameParser.TryParsePublishBody(Encoding.UTF8.GetBytes("""{"data":1}"""), "room:9", out _, out var error));
        Assert.Equal(ErrorCodes.BadRequest, error.Code);
    }
}
