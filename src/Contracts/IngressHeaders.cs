namespace Realtime.Contracts;

/// <summary>Kafka headers of ingress records: what the fanout needs to know without decoding the envelope.</summary>
public static class IngressHeaders
{
    /// <summary>Present with value <c>1</c> on transient events (no seq, never stored or replayed).</summary>
    public const string Transient = "rt-transient";
}

/// <summary>Kafka headers of node-topic records.</summary>
public static class NodeTopicHeaders
{
    /// <summary>Present with value <c>1</c> on records that hold a <c>NodeDeliveryBatch</c> (otherwise one <c>NodeDelivery</c>).</summary>
    public const string Batch = "rt-node-batch";
}
