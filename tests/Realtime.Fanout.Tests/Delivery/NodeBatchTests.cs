using Google.Protobuf;
using Realtime.Contracts.V1;
using Realtime.Fanout.Delivery;

namespace Realtime.Fanout.Tests.Delivery;

public sealed class NodeBatchTests
{
    [Fact]
    public void Appended_deliveries_parse_as_one_batch_in_order_with_their_offsets()
    {
        var batch = new NodeBatch(["gw-0"], 7);
        var encoder = new NodeDeliveryEncoder("rt.ingress");
        // Sizes on both sides of the one- and two-byte length prefixes.
        int[] payloadSizes = [1, 100, 200, 20_000];
        for (var i = 0; i < payloadSizes.Length; i++)
        {
            var envelope = new EventEnvelope { EventId = $"e{i}", Channel = "room:1", Payload = ByteString.CopyFrom(new byte[payloadSizes[i]]) };
            batch.Add(encoder.Encode(envelope.ToByteArray(), 7, 100 + i, 1_700_000_000_000, (ulong)(i + 1), "ep"), 100 + i);
        }

        Assert.False(batch.IsEmpty);
        var (value, offsets) = batch.Take();

        var parsed = NodeDeliveryBatch.Parser.ParseFrom(value);
        Assert.Equal(["e0", "e1", "e2", "e3"], parsed.Deliveries.Select(d => d.Event.EventId));
        Assert.Equal(payloadSizes, parsed.Deliveries.Select(d => d.Event.Payload.Length));
        Assert.Equal([1UL, 2UL, 3UL, 4UL], parsed.Deliveries.Select(d => d.Seq));
        Assert.Equal([100L, 101L, 102L, 103L], offsets);
        Assert.True(batch.IsEmpty);
        Assert.Equal(0, batch.Bytes);
    }

    [Fact]
    public void A_batch_starts_over_after_take_and_does_not_share_its_offsets()
    {
        var batch = new NodeBatch(["gw-1", "gw-2"], 0);
        batch.Add([0x0A, 0x00], 1);
        var (_, first) = batch.Take();
        batch.Add([0x0A, 0x00], 2);
        var (value, second) = batch.Take();

        Assert.Equal([1L], first);
        Assert.Equal([2L], second);
        Assert.Single(NodeDeliveryBatch.Parser.ParseFrom(value).Deliveries);
    }
}
