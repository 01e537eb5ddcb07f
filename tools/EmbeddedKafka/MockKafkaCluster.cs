using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace Realtime.EmbeddedKafka;

/// <summary>
/// An in-memory Kafka-protocol cluster: librdkafka's mock cluster, reachable over loopback TCP by
/// any Kafka client. For development and tests only: nothing is persisted, each partition keeps
/// only about 5 MiB, and admin APIs such as CreateTopics are not served (create topics with
/// <see cref="CreateTopic"/>; never call ListConsumerGroups or DeleteGroups against it, they
/// crash the process).
/// </summary>
public sealed class MockKafkaCluster : IDisposable
{
    private readonly Lock _gate = new();
    private IntPtr _handle;
    private IntPtr _cluster;

    private MockKafkaCluster(IntPtr handle, IntPtr cluster, int brokerCount)
    {
        _handle = handle;
        _cluster = cluster;
        BrokerCount = brokerCount;
        BootstrapServers = Marshal.PtrToStringUTF8(NativeMock.ClusterBootstraps(cluster)) ?? throw new InvalidOperationException("The mock cluster has no bootstrap servers.");
    }

    /// <summary>Comma-separated broker addresses (random loopback ports).</summary>
    public string BootstrapServers { get; }

    /// <summary>Number of brokers; their ids are 1 to <see cref="BrokerCount"/>.</summary>
    public int BrokerCount { get; }

    /// <summary>Starts a cluster of <paramref name="brokerCount"/> brokers with broker 1 as controller and no initial rebalance delay.</summary>
    public static MockKafkaCluster Start(int brokerCount = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokerCount, 1);
        NativeMock.EnsureLoaded();
        var errors = new byte[512];
        var conf = NativeMock.ConfNew();
        // Only the mock's own bookkeeping uses this handle; keep its logging to errors.
        _ = NativeMock.ConfSet(conf, "log_level", "3", errors, (nuint)errors.Length);
        var handle = NativeMock.KafkaNew(0, conf, errors, (nuint)errors.Length);
        if (handle == IntPtr.Zero)
        {
            throw new InvalidOperationException($"rd_kafka_new failed: {System.Text.Encoding.UTF8.GetString(errors).TrimEnd('\0')}");
        }

        var cluster = NativeMock.ClusterNew(handle, brokerCount);
        if (cluster == IntPtr.Zero)
        {
            NativeMock.KafkaDestroy(handle);
            throw new InvalidOperationException("rd_kafka_mock_cluster_new failed.");
        }

        // Older librdkafka builds declare this void; its result carries no information here.
        _ = NativeMock.SetControllerId(cluster, 1);
        NativeMock.GroupInitialRebalanceDelayMs(cluster, 0);
        return new MockKafkaCluster(handle, cluster, brokerCount);
    }

    /// <summary>Creates a topic (the mock serves no CreateTopics request).</summary>
    public void CreateTopic(string topic, int partitions, int replicationFactor = 1)
    {
        var replicas = Math.Min(replicationFactor, BrokerCount);
        Check(NativeMock.TopicCreate(Cluster, topic, partitions, replicas), $"create topic {topic}");
    }

    /// <summary>Disconnects the broker and refuses new connections (no leader change).</summary>
    public void SetBrokerDown(int brokerId) => Check(NativeMock.BrokerSetDown(Cluster, brokerId), $"set broker {brokerId} down");

    /// <summary>Lets the broker accept connections again.</summary>
    public void SetBrokerUp(int brokerId) => Check(NativeMock.BrokerSetUp(Cluster, brokerId), $"set broker {brokerId} up");

    /// <summary>Moves a partition's leadership to another broker.</summary>
    public void SetPartitionLeader(string topic, int partition, int brokerId) =>
        Check(NativeMock.PartitionSetLeader(Cluster, topic, partition, brokerId), $"move leader of {topic}/{partition}");

    /// <summary>Makes metadata advertise the broker at <paramref name="host"/>:<paramref name="port"/> (e.g. a fixed forwarded port).</summary>
    public void SetBrokerAdvertisedAddress(int brokerId, string host, int port) =>
        Check(NativeMock.BrokerSetHostPort(Cluster, brokerId, host, port), $"advertise broker {brokerId}");

    /// <summary>Makes the next requests of <paramref name="apiKey"/> fail with these errors, in order.</summary>
    public void PushRequestErrors(short apiKey, params ErrorCode[] errors) =>
        NativeMock.PushRequestErrorsArray(Cluster, apiKey, (nuint)errors.Length, [.. errors.Select(e => (int)e)]);

    public void Dispose()
    {
        lock (_gate)
        {
            if (_cluster != IntPtr.Zero)
            {
                NativeMock.ClusterDestroy(_cluster);
                _cluster = IntPtr.Zero;
            }

            if (_handle != IntPtr.Zero)
            {
                NativeMock.KafkaDestroy(_handle);
                _handle = IntPtr.Zero;
            }
        }
    }

    private IntPtr Cluster
    {
        get
        {
            var cluster = _cluster;
            ObjectDisposedException.ThrowIf(cluster == IntPtr.Zero, this);
            return cluster;
        }
    }

    private static void Check(int error, string what)
    {
        if (error != 0)
        {
            throw new InvalidOperationException($"Could not {what}: {NativeMock.Name(error)}.");
        }
    }
}
