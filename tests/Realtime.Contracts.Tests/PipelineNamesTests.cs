using Realtime.Contracts;

namespace Realtime.Contracts.Tests;

public sealed class PipelineNamesTests
{
    [Fact]
    public void Default_namespace_is_rt()
    {
        var names = new PipelineNames();

        Assert.Equal(PipelineNames.DefaultNamespace, names.Namespace);
        Assert.Equal("rt", names.Namespace);
        Assert.Equal("rt.ingress", names.IngressTopic);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void Null_or_empty_namespace_falls_back_to_the_default(string? @namespace) =>
        Assert.Equal("rt", new PipelineNames(@namespace).Namespace);

    [Fact]
    public void Names_every_topic_group_and_key_under_the_namespace()
    {
        var names = new PipelineNames("t1a2b-test");

        Assert.Equal("t1a2b-test", names.Namespace);
        Assert.Equal("t1a2b-test.ingress", names.IngressTopic);
        Assert.Equal("t1a2b-test.node.", names.NodeTopicPrefix);
        Assert.Equal("t1a2b-test.node.gw-0", names.NodeTopic("gw-0"));
        Assert.Equal("t1a2b-test.fanout", names.FanoutGroupId);
        Assert.Equal("t1a2b-test.gateway.gw-0", names.NodeGroupId("gw-0"));
        Assert.Equal("t1a2b-test:nodes", names.NodesKey);
        Assert.Equal("t1a2b-test:route:{room:1}", names.RouteKey("room:1"));
        Assert.Equal("t1a2b-test:node:gw-0:alive", names.NodeAliveKey("gw-0"));
        Assert.Equal("t1a2b-test:node:gw-0:routes", names.NodeRoutesKey("gw-0"));
    }

    [Fact]
    public void Node_topics_start_with_the_node_topic_prefix()
    {
        var names = new PipelineNames("ns");

        Assert.StartsWith(names.NodeTopicPrefix, names.NodeTopic("gw-7"), StringComparison.Ordinal);
    }

    [Fact]
    public void Route_key_carries_the_channel_in_a_hash_tag()
    {
        var key = new PipelineNames("ns").RouteKey("org:acme/general");

        var open = key.IndexOf('{', StringComparison.Ordinal);
        var close = key.LastIndexOf('}');
        Assert.True(open > 0 && close == key.Length - 1);
        Assert.Equal("org:acme/general", key[(open + 1)..close]);
    }

    [Fact]
    public void Different_namespaces_never_share_a_name()
    {
        var a = new PipelineNames("alpha");
        var b = new PipelineNames("beta");

        Assert.NotEqual(a.IngressTopic, b.IngressTopic);
        Assert.NotEqual(a.NodeTopic("gw-0"), b.NodeTopic("gw-0"));
        Assert.NotEqual(a.FanoutGroupId, b.FanoutGroupId);
        Assert.NotEqual(a.RouteKey("room:1"), b.RouteKey("room:1"));
        Assert.NotEqual(a.NodeAliveKey("gw-0"), b.NodeAliveKey("gw-0"));
        Assert.NotEqual(a.NodesKey, b.NodesKey);
    }

    [Theory]
    [InlineData("a")]
    [InlineData("rt")]
    [InlineData("Prod.EU_1-blue")]
    [InlineData("t0123abcd-e2e-pipeline")]
    public void Accepts_valid_namespaces(string @namespace) =>
        Assert.Equal(@namespace, new PipelineNames(@namespace).Namespace);

    [Fact]
    public void Accepts_a_namespace_of_exactly_the_maximum_length()
    {
        var @namespace = new string('n', NodeId.MaxLength);

        Assert.Equal(@namespace, new PipelineNames(@namespace).Namespace);
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("colon:ns")]
    [InlineData("brace{")]
    [InlineData("slash/ns")]
    [InlineData("star*")]
    [InlineData("ümlaut")]
    public void Rejects_namespaces_with_characters_kafka_topics_cannot_hold(string @namespace)
    {
        var error = Assert.Throws<ArgumentException>(() => new PipelineNames(@namespace));

        Assert.Equal("namespace", error.ParamName);
        Assert.Contains(@namespace, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_a_namespace_longer_than_the_maximum() =>
        Assert.Throws<ArgumentException>(() => new PipelineNames(new string('n', NodeId.MaxLength + 1)));

    [Theory]
    [InlineData("room:1")]
    [InlineData("a")]
    [InlineData("org:acme/general")]
    [InlineData("user:alice@example.com")]
    [InlineData("x=1,y=2+z_w-v.u")]
    [InlineData("route:{nested}")]
    public void Channel_of_route_key_inverts_route_key(string channel)
    {
        var names = new PipelineNames("ns");

        Assert.Equal(channel, names.ChannelOfRouteKey(names.RouteKey(channel)));
    }

    [Fact]
    public void Channel_of_route_key_round_trips_the_longest_valid_channel()
    {
        var names = new PipelineNames("ns");
        var channel = new string('c', ChannelName.MaxLength);

        Assert.Equal(channel, names.ChannelOfRouteKey(names.RouteKey(channel)));
    }

    [Theory]
    [InlineData("ns:nodes")]
    [InlineData("ns:node:gw-0:alive")]
    [InlineData("ns:route:room:1")]
    [InlineData("ns:route:{room:1")]
    [InlineData("other:route:{room:1}")]
    [InlineData("ns2:route:{room:1}")]
    [InlineData("")]
    public void Channel_of_route_key_is_null_for_other_keys(string key) =>
        Assert.Null(new PipelineNames("ns").ChannelOfRouteKey(key));

    [Fact]
    public void Channel_of_route_key_ignores_route_keys_of_another_namespace()
    {
        var mine = new PipelineNames("mine");
        var theirs = new PipelineNames("theirs");

        Assert.Null(mine.ChannelOfRouteKey(theirs.RouteKey("room:1")));
    }
}
