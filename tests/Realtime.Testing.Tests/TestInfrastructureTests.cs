using Realtime.Contracts;
using Realtime.Testing;
using StackExchange.Redis;

namespace Realtime.Testing.Tests;

public sealed class TestInfrastructureTests(TestInfrastructure infrastructure)
{
    [Fact]
    public void Namespace_is_t_random_dash_hint()
    {
        var name = infrastructure.NewNamespace("pipeline");

        Assert.Matches("^t[a-z0-9]{6}-pipeline$", name);
    }

    [Theory]
    [InlineData("Fanout Group", "fanout-group")]
    [InlineData("a__b..c", "a-b-c")]
    [InlineData("--edge--", "edge")]
    [InlineData("Ünïcode:Ω", "n-code")]
    public void Hint_is_reduced_to_lowercase_letters_digits_and_dashes(string hint, string expected) =>
        Assert.Equal(expected, infrastructure.NewNamespace(hint)[8..]);

    [Theory]
    [InlineData("")]
    [InlineData("***")]
    public void An_empty_hint_leaves_just_the_random_part(string hint) =>
        Assert.Matches("^t[a-z0-9]{6}$", infrastructure.NewNamespace(hint));

    [Fact]
    public void A_long_hint_is_cut_to_40_characters_without_a_trailing_dash()
    {
        var name = infrastructure.NewNamespace(new string('x', 31) + "-yyyyyyyyyy");

        Assert.Equal(TestInfrastructure.MaxNamespaceLength, 40);
        Assert.True(name.Length <= 40, name);
        Assert.False(name.EndsWith('-'));
        Assert.Matches("^[a-z0-9-]+$", name);
    }

    [Fact]
    public void Namespaces_are_unique_and_valid_pipeline_namespaces()
    {
        var names = Enumerable.Range(0, 2000).Select(_ => infrastructure.NewNamespace("same")).ToList();

        Assert.Equal(names.Count, names.Distinct().Count());
        Assert.All(names, n => Assert.Equal(n, new PipelineNames(n).Namespace));
    }

    [Fact(Timeout = 10_000)]
    public async Task Provides_a_running_redis()
    {
        Assert.True(await infrastructure.Redis.PingAsync(TimeSpan.FromSeconds(2)));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(infrastructure.Redis.ConnectionString);
        TestContext.Current.CancellationToken.ThrowIfCancellationRequested();
        var names = new PipelineNames(infrastructure.NewNamespace("redis"));
        var db = connection.GetDatabase();

        await db.SetAddAsync(names.RouteKey("room:1"), "gw-0");

        Assert.Equal(["gw-0"], (await db.SetMembersAsync(names.RouteKey("room:1"))).Select(v => (string?)v));
    }
}
