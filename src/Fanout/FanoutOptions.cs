using System.ComponentModel.DataAnnotations;

namespace Realtime.Fanout;

/// <summary>Settings of one fanout worker. Section <c>Fanout</c>.</summary>
public sealed class FanoutOptions
{
    public const string Section = "Fanout";

    /// <summary>Identifies this instance in the consumer group and in logs. Defaults to host name and process id.</summary>
    public string? InstanceId { get; set; }

    /// <summary>Address of the health endpoint (<c>/healthz</c>, <c>/readyz</c>). Loopback by default.</summary>
    [Required]
    public string HttpEndpoint { get; set; } = "http://127.0.0.1:8090";

    /// <summary>
    /// Most ingress records taken in one batch. A batch shares one Redis round trip for its
    /// routes; it is cut short as soon as the consumer has nothing more buffered, so a quiet
    /// stream is never held back waiting for a batch to fill. Only a backlog fills it: the larger
    /// the batch, the less each event pays of the per-channel sequencing call and of the node-topic
    /// records (docs/benchmarks.md, change 21).
    /// </summary>
    [Range(1, 100_000)]
    public int MaxBatchSize { get; set; } = 5_000;

    /// <summary>
    /// Most node-topic deliveries (records × their target nodes) one batch should make. When the
    /// last batch fanned out widely, the next one takes fewer records: with every channel routed to
    /// 100 nodes a 5,000-record batch is half a million deliveries, and nothing overlaps its dispatch.
    /// </summary>
    [Range(1, 100_000_000)]
    public int MaxBatchDeliveries { get; set; } = 100_000;

    /// <summary>
    /// Most ingress records whose node-topic writes are not yet acknowledged. Consumption
    /// pauses above it, which bounds memory when a broker is slow.
    /// </summary>
    [Range(1, 1_000_000)]
    public int MaxInFlightRecords { get; set; } = 50_000;

    /// <summary>
    /// How long "node N is alive" is trusted before Redis is asked again. A node that died is
    /// still written to for at most its liveness TTL plus this.
    /// </summary>
    public TimeSpan LivenessCacheTtl { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Events per channel kept in the Redis recent window, from which a reconnecting client is
    /// served without touching Kafka. 0 turns the window off.
    /// </summary>
    [Range(0, 100_000)]
    public int RecentEventsPerChannel { get; set; } = 1_000;

    /// <summary>
    /// Events per channel whose ingress offset stays indexed: how far back a position can be
    /// located in the ingress log (and how far back a re-processed event finds its seq).
    /// </summary>
    [Range(1_000, 100_000_000)]
    public int IndexedEventsPerChannel { get; set; } = 1_000_000;

    /// <summary>
    /// Channels whose last position a worker keeps in memory, so that it continues them in the same
    /// epoch if Redis loses their state. Beyond it, arbitrary channels are forgotten.
    /// </summary>
    [Range(0, 100_000_000)]
    public int RememberedChannels { get; set; } = 1_000_000;

    /// <summary>Wait between attempts while Redis cannot answer a route lookup.</summary>
    public TimeSpan RedisRetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    public string ResolveInstanceId() =>
        string.IsNullOrWhiteSpace(InstanceId) ? $"{Environment.MachineName}-{Environment.ProcessId}" : InstanceId;
}
