using Realtime.Fanout.Ingress;

namespace Realtime.Fanout.Tests.Ingress;

public sealed class IngressProgressTests
{
    [Fact]
    public void A_record_without_targets_is_safe_at_once()
    {
        var progress = new IngressProgress();
        Assert.Equal(11, progress.Add(partition: 0, offset: 10, acks: 0));
        Assert.Equal(0, progress.InFlight);
    }

    [Fact]
    public void The_safe_offset_only_moves_past_a_contiguous_prefix_of_delivered_records()
    {
        var progress = new IngressProgress();
        var generation = progress.Generation;
        Assert.Equal(-1, progress.Add(0, 10, acks: 2));
        Assert.Equal(-1, progress.Add(0, 11, acks: 1));
        Assert.Equal(-1, progress.Add(0, 12, acks: 0));
        Assert.Equal(2, progress.InFlight);

        // 11 completes first: 10 still holds the line.
        Assert.Equal(-1, progress.Acknowledge(generation, 0, 11));
        Assert.Equal(-1, progress.Acknowledge(generation, 0, 10));
        // Second ack of 10 releases 10, 11 and the target-less 12.
        Assert.Equal(13, progress.Acknowledge(generation, 0, 10));
        Assert.Equal(0, progress.InFlight);
    }

    [Fact]
    public void Partitions_are_independent()
    {
        var progress = new IngressProgress();
        var generation = progress.Generation;
        progress.Add(0, 5, 1);
        progress.Add(1, 7, 1);
        Assert.Equal(8, progress.Acknowledge(generation, 1, 7));
        Assert.Equal(6, progress.Acknowledge(generation, 0, 5));
    }

    [Fact]
    public void A_batch_record_acknowledges_each_record_it_carries_once()
    {
        var progress = new IngressProgress();
        var generation = progress.Generation;
        // Records 10-12 go to two nodes each, 13 to one: each node's batch record carries its own share.
        progress.Add(0, 10, 2);
        progress.Add(0, 11, 2);
        progress.Add(0, 12, 2);
        progress.Add(0, 13, 1);

        Assert.Equal(-1, progress.AcknowledgeAll(generation, 0, [10, 11, 12]));
        Assert.Equal(4, progress.InFlight);
        Assert.Equal(13, progress.AcknowledgeAll(generation, 0, [10, 11, 12]));
        Assert.Equal(14, progress.AcknowledgeAll(generation, 0, [13]));
        Assert.Equal(0, progress.InFlight);
        Assert.Equal(-1, progress.AcknowledgeAll(generation + 1, 0, [13]));
    }

    [Fact]
    public void A_rewind_returns_the_first_undelivered_offsets_and_ignores_older_acknowledgements()
    {
        var progress = new IngressProgress();
        var before = progress.Generation;
        progress.Add(0, 1, 1);
        progress.Add(0, 2, 1);
        progress.Add(3, 9, 1);
        Assert.Equal(2, progress.Acknowledge(before, 0, 1));

        var seekTo = progress.Rewind();
        Assert.Equal(new Dictionary<int, long> { [0] = 2, [3] = 9 }, seekTo);
        Assert.NotEqual(before, progress.Generation);
        Assert.Equal(0, progress.InFlight);
        Assert.Equal(-1, progress.Acknowledge(before, 0, 2));
    }

    [Fact]
    public void Removing_a_partition_forgets_its_in_flight_records()
    {
        var progress = new IngressProgress();
        progress.Add(0, 1, 3);
        progress.Add(1, 1, 1);
        progress.Remove([0]);
        Assert.Equal(1, progress.InFlight);
        Assert.Equal(-1, progress.Acknowledge(progress.Generation, 0, 1));
    }
}
