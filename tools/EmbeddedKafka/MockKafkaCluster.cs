using System.Runtime.InteropServices;
using System.Text;
using Confluent.Kafka;

namespace Realtime.EmbeddedKafka;

/// <summary>
/// An in-memory Kafka-protocol cluster: librdkafka's mock cluster, reachable over loopback TCP by
/// any Kafka client. For development and tests only.
/// </summary>
/// <remarks>
/// <para>
/// Nothing is persisted. Each partition keeps only about 5 MiB or 100,000 record batches; older
/// batches are dropped silently (the log start offset moves). Topics are created with
/// <see cref="CreateTopic"/> or automatically on first use (4 partitions).
/// </para>
/// <para>
/// The mock serves produce, fetch, list offsets, metadata, offset commit/fetch, classic and
/// KIP-848 consumer groups, idempotent and transactional producers. It does <b>not</b> serve
/// CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, ListGroups, DescribeGroups or
/// DeleteRecords, and AdminClient <c>ListConsumerGroups</c> / <c>DeleteGroups</c> against it
/// <b>crash the process</b>: never call them.
/// </para>
/// <para>Brokers bind random <c>127.0.0.1</c> ports; <see cref="EmbeddedKafkaHost"/> puts them behind fixed ones.</para>
/// </remarks>
public sealed class MockKafkaCluster : IDisposable
{
    // Held by every native call and by Dispose, so no call can use a destroyed cluster.
    private readonly Lock _gate = new();
    private IntPtr _handle;
    private IntPtr _cluster;

    private MockKafkaCluster(IntPtr handle, IntPtr cluster, int brokerCount, string bootstrapServers)
    {
        _handle = handle;
        _cluster = cluster;
        BrokerCount = brokerCount;
        BootstrapServers = bootstrapServers;
    }

    /// <summary>Raised after a broker was set down (false) or up (true); lets <see cref="EmbeddedKafkaHost"/> mirror it on the fixed port.</summary>
    internal event Action<int, bool>? BrokerStateChanged;

    /// <summary>
    /// The brokers' addresses as the mock reports them (<c>rd_kafka_mock_cluster_bootstraps</c>):
    /// comma-separated <c>127.0.0.1:PORT</c> with random ports, in broker-id order.
    /// </summary>
    public string BootstrapServers { get; }

    /// <summary>Number of brokers; their ids are 1 to <see cref="BrokerCount"/>.</summary>
    public int BrokerCount { get; }

    /// <summary>
    /// Starts a cluster of <paramref name="brokerCount"/> brokers (ids 1..N) listening on random
    /// loopback ports, with broker 1 as the controller reported in metadata and no initial
    /// consumer-group rebalance delay.
    /// </summary>
    /// <param name="brokerCount">Number of brokers, at least 1.</param>
    /// <exception cref="InvalidOperationException">librdkafka could not create the cluster.</exception>
    /// <exception cref="DllNotFoundException">The linux-x64 librdkafka of librdkafka.redist is missing.</exception>
    public static MockKafkaCluster Start(int brokerCount = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokerCount, 1);
        var errors = new byte[512];
        var conf = NativeMock.ConfNew();
        if (conf == IntPtr.Zero)
        {
            throw new InvalidOperationException("rd_kafka_conf_new failed.");
        }

        // This handle only does the mock's bookkeeping (and its logging); it connects nowhere.
        // Keep its log to errors and above: it has no bootstrap.servers and would warn about it.
        if (NativeMock.ConfSet(conf, "log_level", "3", errors, (nuint)errors.Length) != NativeMock.ConfOk)
        {
            NativeMock.ConfDestroy(conf);
            throw new InvalidOperationException($"rd_kafka_conf_set failed: {Text(errors)}");
        }

        var handle = NativeMock.KafkaNew(NativeMock.ProducerType, conf, errors, (nuint)errors.Length);
        if (handle == IntPtr.Zero)
        {
            // rd_kafka_new takes ownership of conf only when it succeeds.
            NativeMock.ConfDestroy(conf);
            throw new InvalidOperationException($"rd_kafka_new failed: {Text(errors)}");
        }

        var cluster = NativeMock.ClusterNew(handle, brokerCount);
        if (cluster == IntPtr.Zero)
        {
            NativeMock.KafkaDestroy(handle);
            throw new InvalidOperationException("rd_kafka_mock_cluster_new failed (see librdkafka's log on standard error).");
        }

        // Without a controller id, DescribeCluster/DescribeTopics and metadata-based admin calls stall.
        NativeMock.SetControllerId(cluster, 1);
        NativeMock.GroupInitialRebalanceDelayMs(cluster, 0);
        var bootstraps = Marshal.PtrToStringUTF8(NativeMock.ClusterBootstraps(cluster));
        if (string.IsNullOrEmpty(bootstraps))
        {
            NativeMock.ClusterDestroy(cluster);
            NativeMock.KafkaDestroy(handle);
            throw new InvalidOperationException("The mock cluster reported no bootstrap servers.");
        }

        return new MockKafkaCluster(handle, cluster, brokerCount, bootstraps);
    }

    /// <summary>
    /// Creates a topic (the mock serves no CreateTopics request). A replication factor above
    /// <see cref="BrokerCount"/> is capped by the mock.
    /// </summary>
    /// <exception cref="InvalidOperationException">The mock refused, e.g. <c>TOPIC_ALREADY_EXISTS</c> (the message names the error).</exception>
    public void CreateTopic(string topic, int partitions, int replicationFactor = 1)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicationFactor, 1);
        lock (_gate)
        {
            Check(NativeMock.TopicCreate(Cluster, topic, partitions, replicationFactor), $"create topic '{topic}'");
        }
    }

    /// <summary>
    /// Closes the broker's connections and refuses new ones until <see cref="SetBrokerUp"/>. Leadership
    /// does not move: partitions it leads are unavailable meanwhile.
    /// </summary>
    public void SetBrokerDown(int brokerId)
    {
        CheckBroker(brokerId);
        lock (_gate)
        {
            Check(NativeMock.BrokerSetDown(Cluster, brokerId), $"set broker {brokerId} down");
        }

        BrokerStateChanged?.Invoke(brokerId, false);
    }

    /// <summary>Lets the broker accept connections again (on the same port).</summary>
    public void SetBrokerUp(int brokerId)
    {
        CheckBroker(brokerId);
        lock (_gate)
        {
            Check(NativeMock.BrokerSetUp(Cluster, brokerId), $"set broker {brokerId} up");
        }

        BrokerStateChanged?.Invoke(brokerId, true);
    }

    /// <summary>Moves a partition's leadership to another broker (creating the topic if it does not exist).</summary>
    public void SetPartitionLeader(string topic, int partition, int brokerId)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        CheckBroker(brokerId);
        lock (_gate)
        {
            Check(NativeMock.PartitionSetLeader(Cluster, topic, partition, brokerId), $"move the leader of {topic}/{partition} to broker {brokerId}");
        }
    }

    /// <summary>
    /// Makes metadata responses advertise broker <paramref name="brokerId"/> at
    /// <paramref name="host"/>:<paramref name="port"/>. The broker keeps listening on its own
    /// random port: something (e.g. a <see cref="TcpForwarder"/>) must forward the advertised address to it.
    /// </summary>
    public void SetBrokerAdvertisedAddress(int brokerId, string host, int port)
    {
        CheckBroker(brokerId);
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        lock (_gate)
        {
            NativeMock.BrokerSetHostPort(Cluster, brokerId, host, port);
        }
    }

    /// <summary>
    /// Makes the next requests of Kafka API <paramref name="apiKey"/> (e.g. 0 Produce, 1 Fetch, 3 Metadata,
    /// 8 OffsetCommit) fail with <paramref name="errors"/>, one error per request, in order, on any broker.
    /// <see cref="ErrorCode.Local_Transport"/> makes the broker drop the connection instead.
    /// </summary>
    public void PushRequestErrors(short apiKey, params ErrorCode[] errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        ArgumentOutOfRangeException.ThrowIfNegative(apiKey);
        if (errors.Length == 0)
        {
            return;
        }

        var codes = Array.ConvertAll(errors, e => (int)e);
        lock (_gate)
        {
            NativeMock.PushRequestErrorsArray(Cluster, apiKey, (nuint)codes.Length, codes);
        }
    }

    /// <summary>
    /// Makes Metadata (and AddPartitionsToTxn) responses report <paramref name="error"/> for
    /// <paramref name="topic"/> until reset with <see cref="ErrorCode.NoError"/>.
    /// </summary>
    public void SetTopicError(string topic, ErrorCode error)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        lock (_gate)
        {
            NativeMock.TopicSetError(Cluster, topic, (int)error);
        }
    }

    /// <summary>
    /// Sets the heartbeat interval the brokers prescribe to KIP-848 consumers
    /// (<c>group.protocol=consumer</c>; the mock's default is 3 s). Assignment changes reach such
    /// consumers on their next heartbeat, so a shorter interval makes rebalances faster. Applies to
    /// groups that members join afterwards; classic-protocol groups are not affected.
    /// </summary>
    public void SetConsumerGroupHeartbeatInterval(TimeSpan interval)
    {
        var ms = Milliseconds(interval);
        lock (_gate)
        {
            NativeMock.SetGroupConsumerHeartbeatIntervalMs(Cluster, ms);
        }
    }

    /// <summary>
    /// Sets the session timeout of KIP-848 consumers (<c>group.protocol=consumer</c>): how long a
    /// member that stopped heartbeating keeps its partitions. Applies to groups that members join
    /// afterwards; classic-protocol consumers set theirs with <c>session.timeout.ms</c>.
    /// </summary>
    public void SetConsumerGroupSessionTimeout(TimeSpan timeout)
    {
        var ms = Milliseconds(timeout);
        lock (_gate)
        {
            NativeMock.SetGroupConsumerSessionTimeoutMs(Cluster, ms);
        }
    }

    /// <summary>Stops the brokers (closing every client connection) and frees the cluster. Idempotent and thread-safe.</summary>
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

    /// <summary>The live cluster pointer; call under <see cref="_gate"/>.</summary>
    private IntPtr Cluster
    {
        get
        {
            ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
            return _cluster;
        }
    }

    private void CheckBroker(int brokerId)
    {
        if (brokerId < 1 || brokerId > BrokerCount)
        {
            throw new ArgumentOutOfRangeException(nameof(brokerId), brokerId, $"Broker ids are 1 to {BrokerCount}.");
        }
    }

    private static void Check(int error, string what)
    {
        if (error != 0)
        {
            throw new InvalidOperationException($"Could not {what}: {NativeMock.Name(error)}.");
        }
    }

    private static int Milliseconds(TimeSpan value, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(value))] string? name = null)
    {
        if (value < TimeSpan.FromMilliseconds(1) || value.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(name, value, "Must be between 1 ms and int.MaxValue ms.");
        }

        return (int)value.TotalMilliseconds;
    }

    private static string Text(byte[] buffer)
    {
        var end = Array.IndexOf(buffer, (byte)0);
        return Encoding.UTF8.GetString(buffer, 0, end < 0 ? buffer.Length : end);
    }
}
