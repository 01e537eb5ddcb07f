using System.Buffers;
using Realtime.Contracts.V1;

namespace Realtime.Fanout.Delivery;

/// <summary>
/// The deliveries from one ingress partition whose channels are routed to exactly the same nodes,
/// growing into one <see cref="NodeDeliveryBatch"/> record that every one of those nodes gets (the
/// same bytes, written once): each delivery is appended as an already-encoded element of the
/// repeated field, so nothing is decoded or encoded twice.
/// </summary>
/// <remarks>
/// A channel has one set of targets per consumed batch, so all its events of that batch are in
/// one <see cref="NodeBatch"/> and reach each node in ingress order. Gateways keep order and
/// duplicates by each channel's seq, not by ingress offset, so a node may get the batches of two
/// target sets of one ingress partition one after the other.
/// </remarks>
internal sealed class NodeBatch(string[] nodes, int ingressPartition)
{
    // Tag of NodeDeliveryBatch.deliveries (field 1, length-delimited).
    private const byte DeliveriesTag = (NodeDeliveryBatch.DeliveriesFieldNumber << 3) | 2;

    private readonly ArrayBufferWriter<byte> _buffer = new(4096);
    private List<long> _offsets = [];

    /// <summary>The nodes this batch is written to, each to its own topic.</summary>
    public string[] Nodes { get; } = nodes;

    public int IngressPartition { get; } = ingressPartition;

    public int Bytes => _buffer.WrittenCount;

    public bool IsEmpty => _offsets.Count == 0;

    /// <summary>Appends an encoded <see cref="NodeDelivery"/> made from the ingress record at <paramref name="ingressOffset"/>.</summary>
    public void Add(ReadOnlySpan<byte> delivery, long ingressOffset)
    {
        var span = _buffer.GetSpan(1 + 5 + delivery.Length);
        var n = Prefix(span, delivery.Length);
        delivery.CopyTo(span[n..]);
        _buffer.Advance(n + delivery.Length);
        _offsets.Add(ingressOffset);
    }

    /// <summary>Encodes the delivery of <paramref name="envelope"/> straight into the batch.</summary>
    public void Add(NodeDeliveryEncoder encoder, byte[] envelope, in DeliveryFields fields)
    {
        var size = encoder.Size(envelope, fields);
        var span = _buffer.GetSpan(1 + 5 + size);
        var n = Prefix(span, size);
        encoder.Write(span.Slice(n, size), envelope, fields);
        _buffer.Advance(n + size);
        _offsets.Add(fields.IngressOffset);
    }

    private static int Prefix(Span<byte> span, int length)
    {
        span[0] = DeliveriesTag;
        return NodeDeliveryEncoder.Varint(span, 1, (ulong)length);
    }

    /// <summary>The record's value and the ingress offsets it carries (ascending); the batch starts over empty.</summary>
    public (byte[] Value, List<long> Offsets) Take()
    {
        var value = _buffer.WrittenSpan.ToArray();
        var offsets = _offsets;
        _buffer.ResetWrittenCount();
        _offsets = [];
        return (value, offsets);
    }
}
