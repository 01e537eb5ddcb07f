using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Realtime.Hosting.Telemetry;

/// <summary>The hops of the delivery path whose latency is measured.</summary>
public enum DeliveryHop
{
    /// <summary>Gateway: a publish handed to Kafka until Kafka acknowledged it.</summary>
    PublishAck,

    /// <summary>Fanout: the ingress record's timestamp until the fanout read it.</summary>
    IngressToFanout,

    /// <summary>Gateway: the fanout's routing until the node read the record from its topic.</summary>
    FanoutToNode,

    /// <summary>Gateway: the node read the record until the frame was written to a socket.</summary>
    NodeToSocket,

    /// <summary>Gateway: the publish until the frame was written to a socket.</summary>
    EndToEnd,
}

/// <summary>
/// <c>realtime_delivery_latency_seconds{hop}</c>: one histogram for every hop of the path, so a
/// dashboard can show where time goes. Hops that span processes use wall-clock timestamps carried
/// in the envelope and the delivery record, and so include the clock difference between hosts.
/// </summary>
public sealed class DeliveryLatency : IDisposable
{
    private static readonly KeyValuePair<string, object?>[][] HopTags =
    [
        [new("hop", "publish_ack")],
        [new("hop", "ingress_to_fanout")],
        [new("hop", "fanout_to_node")],
        [new("hop", "node_to_socket")],
        [new("hop", "end_to_end")],
    ];

    private readonly Meter _meter;
    private readonly Histogram<double> _latency;

    public DeliveryLatency(IMeterFactory meters)
    {
        _meter = meters.Create(PipelineTelemetry.LatencyMeter);
        _latency = PipelineTelemetry.LatencyHistogram(_meter, "realtime.delivery.latency", "Latency of each hop of the delivery path, and end to end.");
    }

    public void Record(DeliveryHop hop, TimeSpan elapsed) =>
        _latency.Record(Math.Max(0, elapsed.TotalSeconds), HopTags[(int)hop]);

    /// <summary>Records the time from a wall-clock moment (Unix milliseconds, from another process) until now.</summary>
    public void RecordSince(DeliveryHop hop, long unixMs) =>
        RecordSince(hop, unixMs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

    /// <summary>Records the time from <paramref name="unixMs"/> until <paramref name="nowUnixMs"/> (read once for a whole batch).</summary>
    public void RecordSince(DeliveryHop hop, long unixMs, long nowUnixMs) =>
        _latency.Record(Math.Max(0, (nowUnixMs - unixMs) / 1000.0), HopTags[(int)hop]);

    /// <summary>Records the time from a <see cref="Stopwatch"/> timestamp until now.</summary>
    public void RecordSinceTimestamp(DeliveryHop hop, long timestamp) =>
        _latency.Record(Stopwatch.GetElapsedTime(timestamp).TotalSeconds, HopTags[(int)hop]);

    public void Dispose() => _meter.Dispose();
}
