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
    public void Encoding_straight_into_the_batch_gives_the_same_bytes_as_appending_an_encoded_delivery()
    {
        var encoder = new NodeDeliveryEncoder("rt.ingress");
        var direct = new NodeBatch(["gw-0"], 3);
        var appended = new NodeBatch(["gw-0"], 3);
        // Envelopes on both sides of the one- and two-byte length prefixes, with and without a seq.
        foreach (var (size, seq) in new[] { (10, 0UL), (120, 1UL), (300, 70_000UL) })
        {
            var envelope = new EventEnvelope { EventId = $"e{size}", Channel = "room:1", Payload = ByteString.CopyFrom(new byte[size]) }.ToByteArray();
            var fields = new DeliveryFields(3, 1_000 + size, 1_700_000_000_000, seq, seq == 0 ? string.Empty : "ep", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", string.Empty);
            direct.Add(encoder, envelope, fields);
            appended.Add(encoder.Encode(envelope, fields.IngressPartition, fields.IngressOffset, fields.RoutedAtUnixMs, fields.Seq, fields.Epoch, fields.Traceparent, fields.Tracestate), fields.IngressOffset);
        }

        var (directValue, directOffsets) = direct.Take();
        var (appendedValue, appendedOffsets) = appended.Take();
        Assert.Equal(appendedValue, directValue);
        Assert.Equal(appendedOffsets, directOffsets);
        Assert.Equal([0UL, 1UL, 70_000UL], NodeDeliveryBatch.Parser.ParseFrom(directValue).Deliveries.Select(d => d.Seq));
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
