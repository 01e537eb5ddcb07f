using System.Text;
using Realtime.Contracts.V1;

namespace Realtime.Fanout.Delivery;

/// <summary>What a <see cref="NodeDelivery"/> carries besides the ingress record's own bytes.</summary>
internal readonly record struct DeliveryFields(
    int IngressPartition,
    long IngressOffset,
    long RoutedAtUnixMs,
    ulong Seq,
    string Epoch,
    string Traceparent,
    string Tracestate);

/// <summary>
/// Builds the bytes of a <see cref="NodeDelivery"/> around an ingress record's value without
/// parsing it: protobuf lets a message field be written as its already-encoded bytes, so the
/// envelope is copied once and never decoded or re-encoded by the fanout. It writes straight into
/// the node batch (<see cref="NodeBatch.Add(NodeDeliveryEncoder, byte[], in DeliveryFields)"/>), so
/// no buffer per delivery is allocated.
/// </summary>
/// <remarks>
/// Field for field what the generated <see cref="NodeDelivery"/> writes (the tests compare the
/// bytes): every field number is below 16, so each tag is one byte; default values are omitted.
/// </remarks>
internal sealed class NodeDeliveryEncoder(string ingressTopic)
{
    private readonly byte[] _ingressTopic = Encoding.UTF8.GetBytes(ingressTopic);

    /// <summary>The encoded size of the delivery of <paramref name="envelope"/> with <paramref name="fields"/>.</summary>
    public int Size(byte[] envelope, in DeliveryFields fields)
    {
        var positionSize = PositionSize(fields);
        return LengthDelimitedSize(envelope.Length)
            + LengthDelimitedSize(positionSize)
            + 1 + VarintSize((ulong)fields.RoutedAtUnixMs)
            + (fields.Seq == 0 ? 0 : 1 + VarintSize(fields.Seq))
            + StringSize(fields.Epoch)
            + StringSize(fields.Traceparent)
            + StringSize(fields.Tracestate);
    }

    /// <summary>Writes the delivery into <paramref name="destination"/>, exactly <see cref="Size"/> bytes long.</summary>
    public void Write(Span<byte> destination, byte[] envelope, in DeliveryFields fields)
    {
        var at = Tag(destination, 0, NodeDelivery.EventFieldNumber, LengthDelimited);
        // An embedded message is encoded exactly like a bytes field: length, then its bytes.
        at = Bytes(destination, at, envelope);
        at = Tag(destination, at, NodeDelivery.IngressFieldNumber, LengthDelimited);
        at = Varint(destination, at, (ulong)PositionSize(fields));
        at = Tag(destination, at, KafkaPosition.TopicFieldNumber, LengthDelimited);
        at = Bytes(destination, at, _ingressTopic);
        if (fields.IngressPartition != 0)
        {
            at = Tag(destination, at, KafkaPosition.PartitionFieldNumber, VarintType);
            // int32 is sign-extended to 64 bits on the wire.
            at = Varint(destination, at, (ulong)(long)fields.IngressPartition);
        }

        if (fields.IngressOffset != 0)
        {
            at = Tag(destination, at, KafkaPosition.OffsetFieldNumber, VarintType);
            at = Varint(destination, at, (ulong)fields.IngressOffset);
        }

        at = Tag(destination, at, NodeDelivery.RoutedAtUnixMsFieldNumber, VarintType);
        at = Varint(destination, at, (ulong)fields.RoutedAtUnixMs);
        if (fields.Seq != 0)
        {
            at = Tag(destination, at, NodeDelivery.SeqFieldNumber, VarintType);
            at = Varint(destination, at, fields.Seq);
        }

        at = String(destination, at, NodeDelivery.EpochFieldNumber, fields.Epoch);
        at = String(destination, at, NodeDelivery.TraceparentFieldNumber, fields.Traceparent);
        at = String(destination, at, NodeDelivery.TracestateFieldNumber, fields.Tracestate);
        if (at != destination.Length)
        {
            throw new InvalidOperationException($"Encoded {at} bytes into a {destination.Length}-byte delivery.");
        }
    }

    /// <summary>The delivery as a new array (tests and one-offs; the fanout writes into its batches).</summary>
    public byte[] Encode(byte[] envelope, int ingressPartition, long ingressOffset, long routedAtUnixMs, ulong seq, string epoch, string? traceparent = null, string? tracestate = null)
    {
        var fields = new DeliveryFields(ingressPartition, ingressOffset, routedAtUnixMs, seq, epoch, traceparent ?? string.Empty, tracestate ?? string.Empty);
        var buffer = new byte[Size(envelope, fields)];
        Write(buffer, envelope, fields);
        return buffer;
    }

    private const int VarintType = 0;
    private const int LengthDelimited = 2;

    private int PositionSize(in DeliveryFields fields) =>
        LengthDelimitedSize(_ingressTopic.Length) +
        (fields.IngressPartition == 0 ? 0 : 1 + VarintSize((ulong)(long)fields.IngressPartition)) +
        (fields.IngressOffset == 0 ? 0 : 1 + VarintSize((ulong)fields.IngressOffset));

    private static int LengthDelimitedSize(int length) => 1 + VarintSize((ulong)length) + length;

    private static int StringSize(string value) =>
        value.Length == 0 ? 0 : LengthDelimitedSize(Encoding.UTF8.GetByteCount(value));

    internal static int VarintSize(ulong value) => value == 0 ? 1 : ((63 - System.Numerics.BitOperations.LeadingZeroCount(value)) / 7) + 1;

    internal static int Varint(Span<byte> destination, int at, ulong value)
    {
        while (value >= 0x80)
        {
            destination[at++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[at++] = (byte)value;
        return at;
    }

    private static int Tag(Span<byte> destination, int at, int field, int wireType)
    {
        destination[at] = (byte)((field << 3) | wireType);
        return at + 1;
    }

    private static int Bytes(Span<byte> destination, int at, ReadOnlySpan<byte> value)
    {
        at = Varint(destination, at, (ulong)value.Length);
        value.CopyTo(destination[at..]);
        return at + value.Length;
    }

    private static int String(Span<byte> destination, int at, int field, string value)
    {
        if (value.Length == 0)
        {
            return at;
        }

        at = Tag(destination, at, field, LengthDelimited);
        at = Varint(destination, at, (ulong)Encoding.UTF8.GetByteCount(value));
        return at + Encoding.UTF8.GetBytes(value, destination[at..]);
    }
}
