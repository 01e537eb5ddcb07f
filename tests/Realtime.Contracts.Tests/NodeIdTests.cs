using Realtime.Contracts;

namespace Realtime.Contracts.Tests;

public sealed class NodeIdTests
{
    [Theory]
    [InlineData("gw-0")]
    [InlineData("a")]
    [InlineData("9")]
    [InlineData("Gateway_EU.west-1")]
    [InlineData("._-")]
    public void Accepts_valid_ids(string id) => Assert.True(NodeId.IsValid(id));

    [Fact]
    public void Maximum_length_is_64() => Assert.Equal(64, NodeId.MaxLength);

    [Fact]
    public void Accepts_an_id_of_exactly_the_maximum_length() =>
        Assert.True(NodeId.IsValid(new string('n', NodeId.MaxLength)));

    [Fact]
    public void Rejects_an_id_one_longer_than_the_maximum() =>
        Assert.False(NodeId.IsValid(new string('n', NodeId.MaxLength + 1)));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void Rejects_null_and_empty(string? id) => Assert.False(NodeId.IsValid(id));

    [Theory]
    [InlineData(" ")]
    [InlineData("gw 0")]
    [InlineData("gw:0")]
    [InlineData("gw/0")]
    [InlineData("gw@0")]
    [InlineData("gw+0")]
    [InlineData("gw{0}")]
    [InlineData("gw*")]
    [InlineData("gw\n0")]
    [InlineData("knoten-ü")]
    public void Rejects_ids_with_characters_outside_kafka_topic_names(string id) => Assert.False(NodeId.IsValid(id));

    [Fact]
    public void Every_printable_ascii_character_is_allowed_exactly_when_kafka_allows_it_in_a_topic()
    {
        for (var c = (char)0x20; c < 0x7f; c++)
        {
            var expected = char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-';
            Assert.True(expected == NodeId.IsValid(c.ToString()), $"character '{c}' (0x{(int)c:x2}): expected valid={expected}");
        }
    }

    [Fact]
    public void A_valid_id_makes_a_node_topic_name_of_kafka_topic_characters()
    {
        var topic = new PipelineNames("rt").NodeTopic("gw-0_a.b");

        Assert.Matches("^[a-zA-Z0-9._-]+$", topic);
    }
}
