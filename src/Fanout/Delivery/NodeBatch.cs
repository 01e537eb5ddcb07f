using System.Buffers;
using Realtime.Contracts.V1;

namespace Realtime.Fanout.Delivery;

/// <summary>
/// The deliveries for one node from one ingress partition, routed together, growing into one
/// <see cref="NodeDeliveryBatch"/> record: each delivery is appended as an already-encoded
/// element of the repeated field, so nothing is decoded or encoded twice.
/// </summary>
internal sealed class NodeBatch(string node, int ingressPartition)
{
    // Tag of NodeDeliveryBatch.deliveries (field 1, length-delimited).
    private const byte DeliveriesTag = (NodeDeliveryBatch.DeliveriesFieldNumber << 3) | 2;

    private readonly ArrayBufferWriter<byte> _buffer = new(4096);
    private List<long> _offsets = [];

    public string Node { get; } = node;

    public int IngressPartition { get; } = ingressPartition;

    public int Bytes => _buffer.WrittenCount;

    public bool IsEmpty => _offsets.Count == 0;

    /// <summary>Appends an encoded <see cref="NodeDelivery"/> made from the ingress record at <paramref name="ingressOffset"/>.</summary>
    public void Add(ReadOnlySpan<byte> delivery, long ingressOffset)
    {
        var span = _buffer.GetSpan(1 + 5 + delivery.Length);
        span[0] = DeliveriesTag;
        var n = 1;
        var length = (uint)delivery.Length;
        while (length >= 0x80)
        {
            span[n++] = (byte)(length | 0x80);
            length >>= 7;
        }

        span[n++] = (byte)length;
        delivery.CopyTo(span[n..]);
        _buffer.Advance(n + delivery.Length);
        _offsets.Add(ingressOffset);
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
