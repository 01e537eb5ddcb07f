using Realtime.Gateway.Auth;

namespace Realtime.Gateway.Tests.Auth;

public sealed class ChannelPatternsTests
{
    [Theory]
    [InlineData("room:*", "room:1", true)]
    [InlineData("room:*", "room:", true)]
    [InlineData("room:*", "room:a:b", true)]
    [InlineData("room:*", "rooms:1", false)]
    [InlineData("room:*", "secret:1", false)]
    [InlineData("*", "anything:at/all", true)]
    [InlineData("user:alice", "user:alice", true)]
    [InlineData("user:alice", "user:alice2", false)]
    [InlineData("room:?", "room:1", true)]
    [InlineData("room:?", "room:12", false)]
    [InlineData("org:*/general", "org:acme/general", true)]
    [InlineData("org:*/general", "org:acme/random", false)]
    [InlineData("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false)]
    public void Matches_globs(string pattern, string channel, bool expected) =>
        Assert.Equal(expected, ChannelPatterns.Matches(pattern, channel));

    [Fact]
    public void Allows_when_any_pattern_matches_and_denies_by_default()
    {
        var patterns = new ChannelPatterns(["room:*", "user:bob"]);
        Assert.True(patterns.Allows("room:9"));
        Assert.True(patterns.Allows("user:bob"));
        Assert.False(patterns.Allows("user:eve"));
        Assert.False(ChannelPatterns.None.Allows("room:9"));
        Assert.False(new ChannelPatterns([""]).Allows(""));
    }

    [Fact]
    public void Actions_granted_the_same_patterns_share_them_and_the_others_keep_their_own()
    {
        var channelsOnly = ChannelPermissions.From(["room:*", "user:{sub}"], new Dictionary<ChannelAction, IReadOnlyList<string>>(), "bob", tenant: null);
        var subscribe = channelsOnly.For(ChannelAction.Subscribe);
        Assert.All(Enum.GetValues<ChannelAction>(), action => Assert.Same(subscribe, channelsOnly.For(action)));
        Assert.Equal(["room:*", "user:bob"], subscribe.Patterns);

        var mixed = ChannelPermissions.From(
            ["room:*"],
            new Dictionary<ChannelAction, IReadOnlyList<string>> { [ChannelAction.Publish] = ["feed:*"] },
            "bob",
            tenant: null);
        Assert.Same(mixed.For(ChannelAction.Subscribe), mixed.For(ChannelAction.History));
        Assert.NotSame(mixed.For(ChannelAction.Subscribe), mixed.For(ChannelAction.Publish));
        Assert.True(mixed.Allows(ChannelAction.Publish, "feed:1"));
        Assert.False(mixed.Allows(ChannelAction.Subscribe, "feed:1"));
    }
}
