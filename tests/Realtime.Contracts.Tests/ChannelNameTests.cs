using Realtime.Contracts;

namespace Realtime.Contracts.Tests;

public sealed class ChannelNameTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("Z")]
    [InlineData("7")]
    [InlineData("room:1")]
    [InlineData("org:acme/general")]
    [InlineData("user:alice@example.com")]
    [InlineData("a_b-c.d@e/f=g,h+i:j")]
    [InlineData(":_-.@/=,+")]
    public void Accepts_valid_names(string name) => Assert.True(ChannelName.IsValid(name));

    [Fact]
    public void Accepts_a_name_of_exactly_the_maximum_length() =>
        Assert.True(ChannelName.IsValid(new string('x', ChannelName.MaxLength)));

    [Fact]
    public void Maximum_length_is_200() => Assert.Equal(200, ChannelName.MaxLength);

    [Fact]
    public void Rejects_a_name_one_longer_than_the_maximum() =>
        Assert.False(ChannelName.IsValid(new string('x', ChannelName.MaxLength + 1)));

    [Fact]
    public void Rejects_the_empty_name()
    {
        Assert.False(ChannelName.IsValid(""));
        Assert.False(ChannelName.IsValid(ReadOnlySpan<char>.Empty));
    }

    [Theory]
    [InlineData(" ")]
    [InlineData("room 1")]
    [InlineData("room:1 ")]
    [InlineData("room\t1")]
    [InlineData("room\n1")]
    [InlineData("room:{1}")]
    [InlineData("room:{")]
    [InlineData("room:}")]
    [InlineData("room:*")]
    [InlineData("room:?")]
    [InlineData("room:[1]")]
    [InlineData("room#1")]
    [InlineData("room;1")]
    [InlineData("room\\1")]
    [InlineData("room\"1")]
    [InlineData("room'1")]
    [InlineData("café")]
    [InlineData("ｒｏｏｍ")]
    [InlineData("room\u00001")]
    public void Rejects_names_with_disallowed_characters(string name) => Assert.False(ChannelName.IsValid(name));

    [Fact]
    public void Every_printable_ascii_character_is_allowed_exactly_when_documented()
    {
        const string Allowed = ":_-.@/=,+";
        for (var c = (char)0x20; c < 0x7f; c++)
        {
            var expected = char.IsAsciiLetterOrDigit(c) || Allowed.Contains(c, StringComparison.Ordinal);
            Assert.True(expected == ChannelName.IsValid([c]), $"character '{c}' (0x{(int)c:x2}): expected valid={expected}");
        }
    }

    [Fact]
    public void Validates_a_slice_without_copying()
    {
        var text = "xx room:1 yy".AsSpan();

        Assert.True(ChannelName.IsValid(text.Slice(3, 6)));
        Assert.False(ChannelName.IsValid(text.Slice(2, 7)));
    }
}
