using System.Diagnostics;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using DotNet.Testcontainers.Builders;
using Realtime.EmbeddedKafka;
using Testcontainers.Kafka;

namespace Realtime.Testing;

/// <summary>Where the Kafka broker of a test run comes from.</summary>
public enum KafkaBrokerKind
{
    /// <summary>An existing cluster named by <c>KAFKA_BOOTSTRAP_SERVERS</c>.</summary>
    External,

    /// <summary>A Kafka container started through Testcontainers (needs a Docker engine).</summary>
    Container,

    /// <summary>The in-process librdkafka mock cluster of <c>tools/EmbeddedKafka</c> (real Kafka protocol on loopback, in memory).</summary>
    Embedded,
}

/// <summary>
/// A real Kafka-protocol broker for tests: an external cluster, a Testcontainers container, or
/// the embedded mock cluster, whichever is available first.
/// </summary>
/// <remarks>
/// Never call AdminClient <c>ListConsumerGroups</c> / <c>DeleteGroups</c> against it: the
/// embedded broker does not serve them and they crash the test process.
/// </remarks>
public sealed class KafkaBroker : IAsyncDisposable
{
    /// <summary>Environment variable naming an external cluster to use (bootstrap servers).</summary>
    public const string BootstrapServersVariable = "KAFKA_BOOTSTRAP_SERVERS";

    /// <summary>
    /// Environment variable forcing a kind: <c>embedded</c> skips the Docker probe, <c>container</c>
    /// fails instead of falling back to the embedded broker. Unset: automatic.
    /// </summary>
    public const string KindVariable = "REALTIME_TEST_KAFKA";

    /// <summary>Environment variable overriding the Kafka image Testcontainers runs.</summary>
    public const string ImageVariable = "KAFKA_TEST_IMAGE";

    /// <summary>Number of brokers of the embedded mock cluster.</summary>
    public const int EmbeddedBrokerCount = 3;

    private const string DefaultImage = "confluentinc/cp-kafka:7.5.12";
    private static readonly TimeSpan ContainerStartTimeout = TimeSpan.FromMinutes(3);
    private static readonly TimeSpan TopicReadyTimeout = TimeSpan.FromSeconds(15);

    private readonly KafkaContainer? _container;

    private KafkaBroker(KafkaBrokerKind kind, string bootstrapServers, string reason, KafkaContainer? container, MockKafkaCluster? embedded)
    {
        Kind = kind;
        BootstrapServers = bootstrapServers;
        Reason = reason;
        _container = container;
        Embedded = embedded;
    }

    /// <summary>Bootstrap servers for Kafka clients (Confluent.Kafka <c>BootstrapServers</c>).</summary>
    public string BootstrapServers { get; }

    /// <summary>Which kind of broker this is.</summary>
    public KafkaBrokerKind Kind { get; }

    /// <summary>Why this kind was chosen (also written to standard error when acquired).</summary>
    public string Reason { get; }

    /// <summary>The embedded mock cluster, for fault injection; null unless <see cref="Kind"/> is <see cref="KafkaBrokerKind.Embedded"/>.</summary>
    public MockKafkaCluster? Embedded { get; }

    /// <summary>
    /// Acquires a broker: <c>KAFKA_BOOTSTRAP_SERVERS</c> if set; else a Testcontainers Kafka
    /// container; else (no Docker engine) the embedded mock cluster with
    /// <see cref="EmbeddedBrokerCount"/> brokers. Writes the choice and the reason to standard error.
    /// </summary>
    public static async Task<KafkaBroker> AcquireAsync(CancellationToken cancellationToken = default)
    {
        var broker = await ChooseAsync(cancellationToken);
        Console.Error.WriteLine($"[Realtime.Testing] Kafka broker: {broker.Kind} at {broker.BootstrapServers} ({broker.Reason})");
        return broker;
    }

    /// <summary>
    /// Creates <paramref name="topic"/> with <paramref name="partitions"/> partitions unless it
    /// exists. Embedded: through the mock cluster (it serves no CreateTopics); otherwise through
    /// the AdminClient, then waits until the metadata shows every partition with a leader.
    /// </summary>
    public async Task EnsureTopicAsync(string topic, int partitions)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        if (Embedded is not null)
        {
            try
            {
                Embedded.CreateTopic(topic, partitions, EmbeddedBrokerCount);
            }
            catch (Exception e) when (IsAlreadyExists(e))
            {
                // Created before (by a test or by auto-creation): fine.
            }

            return;
        }

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = BootstrapServers }).Build();
        try
        {
            await admin.CreateTopicsAsync(
                [new TopicSpecification { Name = topic, NumPartitions = partitions, ReplicationFactor = (short)(Kind == KafkaBrokerKind.Container ? 1 : -1) }],
                new CreateTopicsOptions { RequestTimeout = TimeSpan.FromSeconds(30), OperationTimeout = TimeSpan.FromSeconds(30) });
        }
        catch (CreateTopicsException e) when (e.Results.All(r => r.Error.Code is ErrorCode.NoError or ErrorCode.TopicAlreadyExists))
        {
            // Exists already: fine.
        }

        await WaitForTopicAsync(admin, topic);
    }

    /// <summary>Stops the container or the embedded cluster; an external cluster is left alone.</summary>
    public async ValueTask DisposeAsync()
    {
        Embedded?.Dispose();
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }

    private static async Task<KafkaBroker> ChooseAsync(CancellationToken cancellationToken)
    {
        var external = Environment.GetEnvironmentVariable(BootstrapServersVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            return new KafkaBroker(KafkaBrokerKind.External, external.Trim(), $"{BootstrapServersVariable} is set", null, null);
        }

        var forced = Environment.GetEnvironmentVariable(KindVariable)?.Trim().ToUpperInvariant();
        string whyNotContainer;
        if (forced == "EMBEDDED")
        {
            whyNotContainer = $"{KindVariable}=embedded";
        }
        else
        {
            var (container, failure) = await TryStartContainerAsync(cancellationToken);
            if (container is not null)
            {
                return new KafkaBroker(KafkaBrokerKind.Container, container.GetBootstrapAddress(), $"{BootstrapServersVariable} is not set and Docker is available", container, null);
            }

            if (forced == "CONTAINER")
            {
                throw new InvalidOperationException($"{KindVariable}=container, but the Kafka container did not start: {failure}");
            }

            whyNotContainer = $"no Kafka container: {failure}";
        }

        var cluster = MockKafkaCluster.Start(brokerCount: EmbeddedBrokerCount);
        return new KafkaBroker(KafkaBrokerKind.Embedded, cluster.BootstrapServers, $"{BootstrapServersVariable} is not set; {whyNotContainer}", null, cluster);
    }

    private static async Task<(KafkaContainer? Container, string Failure)> TryStartContainerAsync(CancellationToken cancellationToken)
    {
        KafkaContainer? container = null;
        try
        {
            var image = Environment.GetEnvironmentVariable(ImageVariable);
            container = new KafkaBuilder(string.IsNullOrWhiteSpace(image) ? DefaultImage : image).Build();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(ContainerStartTimeout);
            await container.StartAsync(timeout.Token);
            return (container, string.Empty);
        }
        catch (DockerUnavailableException e)
        {
            await DisposeQuietlyAsync(container);
            return (null, $"Docker is unavailable ({FirstLine(e.Message)})");
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            // Docker answered but the container did not come up (no image, no registry...): fall back.
            await DisposeQuietlyAsync(container);
            return (null, $"{e.GetType().Name}: {FirstLine(e.Message)}");
        }
    }

    private static async Task DisposeQuietlyAsync(KafkaContainer? container)
    {
        if (container is null)
        {
            return;
        }

        try
        {
            await container.DisposeAsync();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Console.Error.WriteLine($"[Realtime.Testing] disposing the failed Kafka container: {FirstLine(e.Message)}");
        }
    }

    private static async Task WaitForTopicAsync(IAdminClient admin, string topic)
    {
        var clock = Stopwatch.StartNew();
        var last = "no metadata";
        while (clock.Elapsed < TopicReadyTimeout)
        {
            var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(5));
            var found = metadata.Topics.SingleOrDefault(t => t.Topic == topic);
            if (found is not null && found.Error.Code == ErrorCode.NoError && found.Partitions.Count > 0 &&
                found.Partitions.All(p => p.Leader >= 0 && p.Error.Code == ErrorCode.NoError))
            {
                return;
            }

            last = found is null ? "topic absent" : $"{found.Error.Code}, {found.Partitions.Count} partitions";
            await Task.Delay(100);
        }

        throw new TimeoutException($"Topic {topic} was not ready on {admin.Name} within {TopicReadyTimeout.TotalSeconds} s (last: {last}).");
    }

    private static bool IsAlreadyExists(Exception e) =>
        e is KafkaException { Error.Code: ErrorCode.TopicAlreadyExists } ||
        e.Message.Contains("already exist", StringComparison.OrdinalIgnoreCase) ||
        e.Message.Contains("TOPIC_ALREADY_EXISTS", StringComparison.OrdinalIgnoreCase) ||
        e.Message.Contains("Topic_already_exists", StringComparison.OrdinalIgnoreCase);

    private static string FirstLine(string message)
    {
        var end = message.IndexOfAny(['\r', '\n']);
        return end < 0 ? message : message[..end];
    }
}
