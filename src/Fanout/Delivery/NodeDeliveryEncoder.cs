using Google.Protobuf;
using Realtime.Contracts.V1;

namespace Realtime.Fanout.Delivery;

/// <summary>
/// Builds the bytes of a <see cref="NodeDelivery"/> around an ingress record's value without
/// parsing it: protobuf lets a message field be written as its already-encoded bytes, so the
/// envelope is copied once and never decoded or re-encoded by the fanout.
/// </summary>
internal sealed class NodeDeliveryEncoder(string ingressTopic)
{
    private readonly ByteString _ingressTopic = ByteString.CopyFromUtf8(ingressTopic);

    public byte[] Encode(byte[] envelope, int ingressPartition, long ingressOffset, long routedAtUnixMs, ulong seq, string epoch, string? traceparent = null, string? tracestate = null)
    {
        traceparent ??= string.Empty;
        tracestate ??= string.Empty;
        var positionSize =
            (1 + CodedOutputStream.ComputeBytesSize(_ingressTopic)) +
            (ingressPartition == 0 ? 0 : 1 + CodedOutputStream.ComputeInt32Size(ingressPartition)) +
            (ingressOffset == 0 ? 0 : 1 + CodedOutputStream.ComputeInt64Size(ingressOffset));
        var size =
            1 + CodedOutputStream.ComputeLengthSize(envelope.Length) + envelope.Length +
            1 + CodedOutputStream.ComputeLengthSize(positionSize) + positionSize +
            1 + CodedOutputStream.ComputeInt64Size(routedAtUnixMs) +
            (seq == 0 ? 0 : 1 + CodedOutputStream.ComputeUInt64Size(seq)) +
            (epoch.Length == 0 ? 0 : 1 + CodedOutputStream.ComputeStringSize(epoch)) +
            (traceparent.Length == 0 ? 0 : 1 + CodedOutputStream.ComputeStringSize(traceparent)) +
            (tracestate.Length == 0 ? 0 : 1 + CodedOutputStream.ComputeStringSize(tracestate));

        var buffer = new byte[size];
        var output = new CodedOutputStream(buffer);
        output.WriteTag(NodeDelivery.EventFieldNumber, WireFormat.WireType.LengthDelimited);
        // An embedded message is encoded exactly like a bytes field: length, then its bytes.
        output.WriteBytes(UnsafeByteOperations.UnsafeWrap(envelope));
        output.WriteTag(NodeDelivery.IngressFieldNumber, WireFormat.WireType.LengthDelimited);
        output.WriteLength(positionSize);
        output.WriteTag(KafkaPosition.TopicFieldNumber, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(_ingressTopic);
        if (ingressPartition != 0)
        {
            output.WriteTag(KafkaPosition.PartitionFieldNumber, WireFormat.WireType.Varint);
            output.WriteInt32(ingressPartition);
        }

        if (ingressOffset != 0)
        {
            output.WriteTag(KafkaPosition.OffsetFieldNumber, WireFormat.WireType.Varint);
            output.WriteInt64(ingressOffset);
        }

        output.WriteTag(NodeDelivery.RoutedAtUnixMsFieldNumber, WireFormat.WireType.Varint);
        output.WriteInt64(routedAtUnixMs);
        if (seq != 0)
        {
            output.WriteTag(NodeDelivery.SeqFieldNumber, WireFormat.WireType.Varint);
            output.WriteUInt64(seq);
        }

        if (epoch.Length != 0)
        {
            output.WriteTag(NodeDelivery.EpochFieldNumber, WireFormat.WireType.LengthDelimited);
            output.WriteString(epoch);
        }

        if (traceparent.Length != 0)
        {
            output.WriteTag(NodeDelivery.TraceparentFieldNumber, WireFormat.WireType.LengthDelimited);
            output.WriteString(traceparent);
        }

        if (tracestate.Length != 0)
        {
            output.WriteTag(NodeDelivery.TracestateFieldNumber, WireFormat.WireType.LengthDelimited);
            output.WriteString(tracestate);
        }

        output.CheckNoSpaceLeft();
        return buffer;
    }
}
