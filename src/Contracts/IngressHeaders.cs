namespace Realtime.Contracts;

/// <summary>Kafka headers of ingress records: what the fanout needs to know without decoding the envelope.</summary>
public static class IngressHeaders
{
    /// <summary>Present with value <c>1</c> on transient events (no seq, never stored or replayed).</summary>
    public const string Transient = "rt-transient";
}
