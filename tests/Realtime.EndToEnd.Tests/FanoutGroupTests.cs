using System.Text.Json.Nodes;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>Fanout workers form one consumer group: they share the ingress partitions and hand them over.</summary>
public sealed class FanoutGroupTests(TestInfrastructure infrastructure, ITestOutputHelper output)
{
    [Fact]
    public async Task Two_fanout_instances_share_the_partitions_and_the_stream_continues_when_one_stops()
    {
        await using var stack = await LocalPipeline.StartAsync(infrastructure, "fanout-group", gateways: 2, fanouts: 2);

        // Both members own partitions once the group settled.
        await stack.Fanouts[0].WaitForLineAsync(OwnsSome, TimeSpan.FromSeconds(30));
        await stack.Fanouts[1].WaitForLineAsync(OwnsSome, TimeSpan.FromSeconds(30));

        // Channels spread over the ingress partitions, so both workers carry traffic.
        var channels = Enumerable.Range(0, 16).Select(i => $"room:fg-{Guid.NewGuid():N}-{i}").ToArray();
        await using var subscriber = await stack.ConnectAsync(1, "sub", "room:*");
        await using var publisher = await stack.ConnectAsync(0, "pub", "room:*");
        foreach (var channel in channels)
        {
            await subscriber.SubscribeAsync(channel);
        }

        const int PerPhase = 200;
        var sent = 0;
        async Task PublishPhaseAsync()
        {
            var acks = new List<Task<JsonObject>>();
            for (var i = 0; i < PerPhase; i++, sent++)
            {
                acks.Add(await publisher.SendRequestAsync(new JsonObject { ["type"] = "publish", ["channel"] = channels[sent % channels.Length], ["event"] = "n", ["data"] = sent }));
            }

            await Task.WhenAll(acks).WaitAsync(TimeSpan.FromSeconds(30));
        }

        await PublishPhaseAsync();
        var first = await subscriber.TakeEventsAsync(PerPhase, TimeSpan.FromSeconds(30));
        Assert.Equal(PerPhase, first.Count);

        // One worker stops (graceful: it finishes its writes and leaves the group).
        await stack.Fanouts[0].TerminateAsync(TimeSpan.FromSeconds(30));
        Assert.True(stack.Fanouts[0].HasExited);
        await stack.Fanouts[1].WaitForLineAsync(l => l.Contains("owns 8", StringComparison.Ordinal), TimeSpan.FromSeconds(30));

        await PublishPhaseAsync();
        var second = await subscriber.TakeEventsAsync(PerPhase, TimeSpan.FromSeconds(30));

        var all = first.Concat(second).Select(e => ((string)e["channel"]!, (int)e["data"]!)).ToList();
        var distinct = all.Distinct().ToList();
        output.WriteLine($"published={sent} delivered={all.Count} distinct={distinct.Count} duplicates={all.Count - distinct.Count}");
        Assert.Equal(Enumerable.Range(0, sent), distinct.Select(e => e.Item2).Order());

        // Per channel, in publish order.
        foreach (var group in distinct.GroupBy(e => e.Item1))
        {
            var values = group.Select(e => e.Item2).ToList();
            Assert.Equal(values.Order(), values);
        }
    }

    private static bool OwnsSome(string line) =>
        line.Contains("Fanout assigned partitions", StringComparison.Ordinal) && !line.Contains("owns 0", StringComparison.Ordinal);
}
