using Realtime.Gateway.Connections;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Routing;

namespace Realtime.Gateway.Tests.Routing;

public sealed class ChannelSubscribersTests
{
    [Fact]
    public void A_sink_is_added_once_and_removed_once()
    {
        var subscribers = new ChannelSubscribers();
        var sink = new Sink();

        Assert.True(subscribers.Add(sink));
        Assert.False(subscribers.Add(sink));
        Assert.True(subscribers.Contains(sink));
        Assert.Equal([sink], subscribers.Snapshot());

        Assert.True(subscribers.Remove(sink));
        Assert.False(subscribers.Remove(sink));
        Assert.False(subscribers.Contains(sink));
        Assert.Empty(subscribers.Snapshot());
        Assert.Equal(0, subscribers.Count);
    }

    [Fact]
    public void The_snapshot_is_shared_until_a_change_and_a_change_does_not_alter_a_snapshot_already_taken()
    {
        var subscribers = new ChannelSubscribers();
        var first = new Sink();
        subscribers.Add(first);

        var before = subscribers.Snapshot();
        Assert.Same(before, subscribers.Snapshot());

        var second = new Sink();
        subscribers.Add(second);
        var after = subscribers.Snapshot();

        // A dispatch under way keeps the array it read; the next one sees the new subscriber.
        Assert.Equal([first], before);
        Assert.Equal(new HashSet<IFrameSink> { first, second }, after.ToHashSet());
        Assert.NotSame(before, after);
    }

    [Fact]
    public void A_sink_is_found_by_reference_even_when_its_type_calls_others_equal()
    {
        var subscribers = new ChannelSubscribers();
        var sinks = Enumerable.Range(0, ChannelSubscribers.ScanLimit + 4).Select(_ => new EqualToEveryone()).ToArray();

        // Past the scan limit, too: the index compares references, as the scan does.
        Assert.All(sinks, s => Assert.True(subscribers.Add(s)));
        Assert.Equal(sinks.Length, subscribers.Count);
        Assert.True(subscribers.Remove(sinks[3]));
        Assert.DoesNotContain(subscribers.Snapshot(), s => ReferenceEquals(s, sinks[3]));
        Assert.Equal(sinks.Length - 1, subscribers.Snapshot().Length);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Random_adds_and_removes_across_the_scan_limit_match_a_reference_set(int seed)
    {
        var random = new Random(seed);
        var pool = Enumerable.Range(0, 300).Select(_ => new Sink()).ToArray();
        var subscribers = new ChannelSubscribers();
        var expected = new HashSet<IFrameSink>(ReferenceEqualityComparer.Instance);
        var largest = 0;
        var shrankBelowScan = false;

        for (var step = 0; step < 5_000; step++)
        {
            // Phases that grow to a few hundred and shrink back below the scan limit, so the
            // index is built, dropped and the array halved on the way.
            var growing = step / 500 % 2 == 0;
            var add = random.Next(4) < (growing ? 3 : 1) || expected.Count == 0;
            var sink = add || random.Next(4) == 0 ? pool[random.Next(pool.Length)] : expected.ElementAt(random.Next(expected.Count));
            if (add)
            {
                Assert.Equal(expected.Add(sink), subscribers.Add(sink));
            }
            else
            {
                Assert.Equal(expected.Remove(sink), subscribers.Remove(sink));
            }

            if (step % 50 == 0)
            {
                var snapshot = subscribers.Snapshot();
                Assert.Equal(expected.Count, snapshot.Length);
                Assert.True(expected.SetEquals(snapshot), $"step {step}");
            }

            largest = Math.Max(largest, expected.Count);
            shrankBelowScan |= largest > ChannelSubscribers.ScanLimit && expected.Count <= ChannelSubscribers.ScanLimit / 2;
            Assert.Equal(expected.Count, subscribers.Count);
            Assert.Equal(expected.Contains(pool[step % pool.Length]), subscribers.Contains(pool[step % pool.Length]));
        }

        Assert.True(largest > 128, $"grew to {largest} only");
        Assert.True(shrankBelowScan, "never shrank back below the scan limit");
    }

    private class Sink : IFrameSink
    {
        public void DeliverEvent(string channel, OutgoingEvent outgoing)
        {
        }

        public void CatchUp(string channel, ChannelPosition head)
        {
        }
    }

    private sealed class EqualToEveryone : Sink
    {
        public override bool Equals(object? obj) => obj is EqualToEveryone;

        public override int GetHashCode() => 1;
    }
}
