using System.Text;
using Confluent.Kafka;
using Realtime.Fanout.Ingress;

namespace Realtime.Fanout.Tests.Ingress;

public sealed class ConsumedBatchTests
{
    [Fact]
    public void Records_are_grouped_by_channel_and_partition_in_ingress_order()
    {
        var batch = Batch((0, 10, "a"), (0, 11, "b"), (1, 20, "a"), (0, 12, "a"));
        batch.Group(_ => false);

        Assert.Equal(["a@0", "b@0", "a@1"], batch.Channels.Select(c => $"{c.Channel}@{c.Partition}"));
        Assert.Equal([0, 3], batch.Channels[0].Records);
        Assert.Equal([10L, 11, 20, 12], batch.Inputs.Select(i => i.Offset));
        var byRecord = batch.ByRecord();
        Assert.Same(batch.Channels[0], byRecord[3].Work);
        Assert.Equal(1, byRecord[3].Position);
    }

    [Fact]
    public void Transient_records_are_marked_for_the_sequencer()
    {
        var batch = Batch((0, 10, "a"), (0, 11, "a"));
        batch.Records[1].Message.Headers = [new Header("t", [1])];
        batch.Group(headers => headers is { Count: > 0 });

        Assert.Equal([false, true], batch.Inputs.Select(i => i.Transient));
    }

    [Fact]
    public void A_held_batch_drops_the_records_of_partitions_it_lost_and_reports_where_the_rest_start()
    {
        var batch = Batch((0, 10, "a"), (1, 20, "b"), (0, 11, "a"), (2, 30, "c"), (1, 21, "b"));
        batch.Group(_ => false);

        batch.Drop([1, 7]);

        Assert.Equal([false, true, false, false, true], Enumerable.Range(0, batch.Count).Select(batch.IsDropped));
        Assert.Equal([(0, 10L), (2, 30L)], batch.FirstOffsets());
    }

    [Fact]
    public void A_batch_being_read_loses_the_records_of_revoked_partitions_and_keeps_reading()
    {
        var batch = Batch((0, 10, "a"), (1, 20, "b"), (0, 11, "a"));

        batch.Remove([0]);
        batch.Records.Add(Record(0, 5, "a"));

        Assert.Equal([(1, 20L), (0, 5L)], batch.Records.Select(r => (r.Partition.Value, r.Offset.Value)));
        Assert.False(batch.IsDropped(1));
    }

    [Fact]
    public void Forget_removes_from_a_batch_being_read_and_drops_from_one_being_sequenced()
    {
        var reading = Batch((0, 10, "a"), (1, 20, "b"));
        var sequencing = Batch((0, 8, "a"), (1, 18, "b"));
        sequencing.Group(_ => false);

        reading.Forget([0]);
        sequencing.Forget([0]);

        // Removing from a grouped batch would shift the indexes its channels' seqs refer to.
        Assert.Equal([(1, 20L)], reading.Records.Select(r => (r.Partition.Value, r.Offset.Value)));
        Assert.Equal(2, sequencing.Count);
        Assert.Equal([true, false], Enumerable.Range(0, sequencing.Count).Select(sequencing.IsDropped));
        Assert.Equal([(1, 18L)], sequencing.FirstOffsets());
    }

    [Fact]
    public void Clear_makes_the_batch_ready_for_reuse()
    {
        var batch = Batch((0, 10, "a"), (1, 20, "b"));
        batch.Group(_ => false);
        batch.Drop([0]);

        batch.Clear();
        batch.Records.Add(Record(0, 12, "a"));
        batch.Group(_ => false);

        Assert.False(batch.IsDropped(0));
        Assert.True(batch.IsGrouped);
        Assert.Single(batch.Channels);
        Assert.Single(batch.Inputs);
        Assert.Equal([(0, 12L)], batch.FirstOffsets());
    }

    private static ConsumedBatch Batch(params (int Partition, long Offset, string Channel)[] records)
    {
        var batch = new ConsumedBatch(16);
        foreach (var (partition, offset, channel) in records)
        {
            batch.Records.Add(Record(partition, offset, channel));
        }

        return batch;
    }

    private static ConsumeResult<byte[], byte[]> Record(int partition, long offset, string channel) => new()
    {
        TopicPartitionOffset = new TopicPartitionOffset("rt.ingress", partition, offset),
        Message = new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(channel), Value = [1, 2, 3] },
    };
}
