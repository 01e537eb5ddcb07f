using Google.Protobuf;
using Realtime.Contracts.V1;
using Realtime.Fanout.Delivery;

namespace Realtime.Fanout.Tests.Delivery;

public sealed class NodeDeliveryEncoderTests
{
    [Theory]
    [InlineData(0, 0L, 0UL, "", "", "")]
    [InlineData(3, 1L, 1UL, "e1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "")]
    [InlineData(11, 123_456_789_012L, 9_000_000_000UL, "0193abcdef012345", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "vendor=1")]
    [InlineData(int.MaxValue, long.MaxValue, ulong.MaxValue, "épöch", "", "vendor=ü")]
    public void Encodes_the_same_bytes_as_the_generated_message(int partition, long offset, ulong seq, string epoch, string traceparent, string tracestate)
    {
        var envelope = new EventEnvelope
        {
            EventId = "e1",
            Channel = "room:1",
            EventType = "message.created",
            Payload = ByteString.CopyFromUtf8("{\"text\":\"hi\"}"),
            ContentType = "application/json",
            PublishedAtUnixMs = 1_700_000_000_000,
            Publisher = new PublisherIdentity { Subject = "alice", NodeId = "gw-0", Origin = PublishOrigin.Websocket },
        };
        var expected = new NodeDelivery
        {
            Event = envelope,
            Ingress = new KafkaPosition { Topic = "rt.ingress", Partition = partition, Offset = offset },
            RoutedAtUnixMs = 1_700_000_000_123,
            Seq = seq,
            Epoch = epoch,
            Traceparent = traceparent,
            Tracestate = tracestate,
        };

        var encoded = new NodeDeliveryEncoder("rt.ingress").Encode(envelope.ToByteArray(), partition, offset, 1_700_000_000_123, seq, epoch, traceparent, tracestate);

        Assert.Equal(expected.ToByteArray(), encoded);
        Assert.Equal(expected, NodeDelivery.Parser.ParseFrom(encoded));
    }
}
