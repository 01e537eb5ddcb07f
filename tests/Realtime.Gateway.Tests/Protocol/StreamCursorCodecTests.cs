using Realtime.Gateway.Protocol;

namespace Realtime.Gateway.Tests.Protocol;

public sealed class StreamCursorCodecTests
{
    [Fact]
    public void Round_trips_the_positions_of_every_channel()
    {
        var positions = new Dictionary<string, ChannelPosition>
        {
            ["room:1"] = new("e1", 41),
            ["user:alice"] = new("e2", 0),
        };
        var text = StreamCursorCodec.Encode(positions);
        Assert.Matches("^[A-Za-z0-9_-]+$", text);
        Assert.True(StreamCursorCodec.TryDecode(text, maxChannels: 10, out var decoded));
        Assert.Equal(positions, decoded);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("not a cursor!")]
    [InlineData("AAAA")]
    public void Refuses_text_it_did_not_issue(string? text) =>
        Assert.False(StreamCursorCodec.TryDecode(text, maxChannels: 10, out _));

    [Fact]
    public void Refuses_more_channels_than_allowed_and_positions_without_an_epoch()
    {
        var three = StreamCursorCodec.Encode(Enumerable.Range(0, 3).Select(i => KeyValuePair.Create($"room:{i}", new ChannelPosition("e", 1))));
        Assert.False(StreamCursorCodec.TryDecode(three, maxChannels: 2, out _));
        var noEpoch = StreamCursorCodec.Encode([KeyValuePair.Create("room:1", new ChannelPosition(string.Empty, 1))]);
        Assert.False(StreamCursorCodec.TryDecode(noEpoch, maxChannels: 2, out _));
    }

    [Fact]
    public void Refuses_a_cursor_longer_than_the_limit() =>
        Assert.False(StreamCursorCodec.TryDecode(new string('A', StreamCursorCodec.MaxLength + 1), maxChannels: 1000, out _));
}
