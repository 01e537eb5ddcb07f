using System.Globalization;
using Confluent.Kafka;

namespace Realtime.Hosting;

/// <summary>
/// The librdkafka settings of every client the pipeline creates, in one place so that a
/// hand-off's durability (acks, idempotence, offset storage) cannot drift between processes.
/// </summary>
public static class KafkaClientSettings
{
    /// <summary>
    /// A producer whose acknowledgement means "durable": acks=all and idempotence, so that
    /// librdkafka's own retries neither duplicate nor reorder records within a partition.
    /// </summary>
    public static ProducerConfig DurableProducer(KafkaOptions options, string clientId)
    {
        var config = new ProducerConfig
        {
            BootstrapServers = options.BootstrapServers,
            ClientId = clientId,
            Acks = Acks.All,
            EnableIdempotence = true,
            MaxInFlight = 5,
            LingerMs = options.LingerMs,
            MessageTimeoutMs = (int)options.ProduceTimeout.TotalMilliseconds,
            SocketNagleDisable = true,
            // Producers never create topics: a missing node topic means a dead node.
            AllowAutoCreateTopics = false,
            // Delivery reports carry only what we read: the status and the position.
            DeliveryReportFields = "status",
        };
        Apply(config, options);
        return config;
    }

    /// <summary>
    /// A consumer that stores offsets explicitly (only after the work they stand for is done)
    /// and lets librdkafka commit what was stored in the background.
    /// </summary>
    public static ConsumerConfig AtLeastOnceConsumer(KafkaOptions options, string groupId, string clientId)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = options.BootstrapServers,
            GroupId = groupId,
            ClientId = clientId,
            EnableAutoCommit = true,
            AutoCommitIntervalMs = 500,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            FetchWaitMaxMs = options.FetchWaitMaxMs,
            FetchMinBytes = 1,
            SocketNagleDisable = true,
            // Headers and keys are read; timestamps too (lag in seconds).
            ConsumeResultFields = "topic,headers,timestamp",
            SessionTimeoutMs = 10_000,
            HeartbeatIntervalMs = 1_000,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
            AllowAutoCreateTopics = false,
        };
        Apply(config, options);
        return config;
    }

    public static AdminClientConfig Admin(KafkaOptions options, string clientId)
    {
        var config = new AdminClientConfig
        {
            BootstrapServers = options.BootstrapServers,
            ClientId = clientId,
            // A metadata request must not create the topic it asks about (with the broker's
            // default partition count): creating topics is the provisioner's explicit job.
            AllowAutoCreateTopics = false,
        };
        Apply(config, options);
        return config;
    }

    /// <summary>
    /// A consumer that only reads positions: it uses a group's id to read that group's committed
    /// offsets but never joins the group (it only assigns) and never commits.
    /// </summary>
    public static ConsumerConfig PositionReader(KafkaOptions options, string groupId, string clientId)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = options.BootstrapServers,
            GroupId = groupId,
            ClientId = clientId,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            AllowAutoCreateTopics = false,
            EnablePartitionEof = true,
            FetchWaitMaxMs = 100,
        };
        Apply(config, options);
        return config;
    }

    private static void Apply(ClientConfig config, KafkaOptions options)
    {
        foreach (var (key, value) in options.Properties)
        {
            config.Set(key, value);
        }
    }

    internal static string Milliseconds(TimeSpan value) =>
        ((long)value.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
}
