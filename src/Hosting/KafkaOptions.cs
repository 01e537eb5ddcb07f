using System.ComponentModel.DataAnnotations;

namespace Realtime.Hosting;

/// <summary>Where Kafka is and how the pipeline's topics are laid out. Section <c>Kafka</c>.</summary>
public sealed class KafkaOptions
{
    public const string Section = "Kafka";

    /// <summary>Comma-separated bootstrap servers, e.g. <c>127.0.0.1:9092</c>.</summary>
    [Required]
    public string BootstrapServers { get; set; } = "127.0.0.1:9092";

    /// <summary>
    /// Extra librdkafka settings applied to every client (security.protocol, sasl.*, ssl.*...).
    /// They override the pipeline's defaults, so use them with care.
    /// </summary>
    public Dictionary<string, string> Properties { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Create the ingress and node topics at start with the settings below when they are missing.
    /// Needs a broker that serves CreateTopics (a real Kafka); the embedded broker creates topics itself.
    /// </summary>
    public bool ProvisionTopics { get; set; } = true;

    /// <summary>Partitions of the ingress topic when it is created here. Bounds the fanout's parallelism.</summary>
    [Range(1, 10_000)]
    public int IngressPartitions { get; set; } = 12;

    /// <summary>Partitions of each node's delivery topic when it is created here.</summary>
    [Range(1, 1_000)]
    public int NodeTopicPartitions { get; set; } = 4;

    /// <summary>Replication factor of created topics.</summary>
    [Range(1, 32)]
    public short ReplicationFactor { get; set; } = 1;

    /// <summary>Retention of the ingress topic when created here: the durable replay window.</summary>
    public TimeSpan IngressRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Retention of node topics when created here: they only carry events to a node, replay comes from ingress.</summary>
    public TimeSpan NodeTopicRetention { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long a produce may take before the publisher gives up and reports UNAVAILABLE (librdkafka message.timeout.ms).</summary>
    public TimeSpan ProduceTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>librdkafka linger.ms for producers: batching against latency.</summary>
    [Range(0, 1_000)]
    public double LingerMs { get; set; } = 1;

    /// <summary>
    /// librdkafka fetch.wait.max.ms for consumers: how long a broker may hold a fetch that finds
    /// nothing new. A Kafka broker answers a held fetch as soon as a record arrives, so this is not
    /// latency there; it bounds how often idle consumers ask (every consumer, every broker).
    /// The embedded broker (librdkafka's mock cluster) holds an empty fetch for the whole wait and
    /// does not answer it early, so there it is latency: <c>./realtime.sh up</c> and the tests set 5 ms.
    /// </summary>
    [Range(1, 10_000)]
    public int FetchWaitMaxMs { get; set; } = 500;
}
