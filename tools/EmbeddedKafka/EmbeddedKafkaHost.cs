using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;

namespace Realtime.EmbeddedKafka;

/// <summary>Options of <see cref="EmbeddedKafkaHost"/>.</summary>
public sealed class EmbeddedKafkaHostOptions
{
    /// <summary>IPv4 loopback address the brokers are reachable and advertised at.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>
    /// Port of broker 1; broker N is at <c>FirstPort + N - 1</c>. 0 gives each broker a free port
    /// (see <see cref="EmbeddedKafkaHost.BootstrapServers"/>), which suits parallel tests.
    /// </summary>
    public int FirstPort { get; init; } = 9092;

    /// <summary>Number of brokers (ids 1..N), at least 1.</summary>
    public int Brokers { get; init; } = 1;

    /// <summary>Topics created at start, with a replication factor of <c>min(3, Brokers)</c>.</summary>
    public IReadOnlyList<(string Topic, int Partitions)> Topics { get; init; } = [];

    /// <summary>
    /// False (the default): metadata advertises each broker's own port, so clients bootstrap
    /// through the fixed ports and then talk to the brokers directly, as with a Kafka cluster.
    /// True: the fixed ports are advertised and every byte goes through this process's relay,
    /// which costs about as much CPU as the brokers themselves under load.
    /// </summary>
    public bool RelayAllTraffic { get; init; }
}

/// <summary>
/// The embedded broker as the development stack runs it: a <see cref="MockKafkaCluster"/> whose
/// brokers are reachable at fixed loopback ports (<c>FirstPort</c>, <c>FirstPort + 1</c>, ...),
/// with the configured topics created. Clients given <see cref="BootstrapServers"/> bootstrap
/// there and then connect to the advertised brokers: their own ports, or with
/// <see cref="EmbeddedKafkaHostOptions.RelayAllTraffic"/> the fixed ones.
/// </summary>
public sealed class EmbeddedKafkaHost : IAsyncDisposable
{
    private static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(10);

    private readonly List<TcpForwarder> _forwarders;
    private int _disposed;

    private EmbeddedKafkaHost(MockKafkaCluster cluster, List<TcpForwarder> forwarders, string bootstrapServers)
    {
        Cluster = cluster;
        _forwarders = forwarders;
        BootstrapServers = bootstrapServers;
    }

    /// <summary>The fixed addresses of all brokers, comma-separated, e.g. <c>127.0.0.1:9092</c>.</summary>
    public string BootstrapServers { get; }

    /// <summary>The mock cluster behind the fixed ports, for fault injection.</summary>
    public MockKafkaCluster Cluster { get; }

    /// <summary>
    /// Starts the cluster, the forwarders and the topics, and returns once a Kafka client reaching
    /// <see cref="BootstrapServers"/> sees every broker at its fixed address and every topic.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid options (e.g. a host that is not IPv4 loopback).</exception>
    /// <exception cref="SocketException">A fixed port cannot be bound (typically: in use).</exception>
    /// <exception cref="InvalidOperationException">The cluster did not come up or a topic could not be created.</exception>
    public static EmbeddedKafkaHost Start(EmbeddedKafkaHostOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Topics, nameof(options));
        var address = ParseHost(options.Host);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Brokers, 1, nameof(options));
        if (options.FirstPort < 0 || options.FirstPort + options.Brokers - 1 > IPEndPoint.MaxPort)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.FirstPort, $"FirstPort must be 0 or leave room for {options.Brokers} ports below 65536.");
        }

        var cluster = MockKafkaCluster.Start(options.Brokers);
        var forwarders = new List<TcpForwarder>();
        try
        {
            // Which random port is which broker id: ask the brokers themselves.
            var actual = Brokers(cluster.BootstrapServers, options.Brokers);
            for (var id = 1; id <= options.Brokers; id++)
            {
                var target = actual[id];
                var port = options.FirstPort == 0 ? 0 : options.FirstPort + id - 1;
                var forwarder = TcpForwarder.Start(new IPEndPoint(address, port), () => target);
                forwarders.Add(forwarder);
                if (options.RelayAllTraffic)
                {
                    cluster.SetBrokerAdvertisedAddress(id, options.Host, forwarder.LocalEndPoint.Port);
                }
            }

            foreach (var (topic, partitions) in options.Topics)
            {
                cluster.CreateTopic(topic, partitions, Math.Min(3, options.Brokers));
            }

            var bootstrap = string.Join(',', forwarders.Select(f => $"{options.Host}:{f.LocalEndPoint.Port}"));
            var advertised = options.RelayAllTraffic
                ? forwarders.Select((f, i) => (Id: i + 1, Address: $"{options.Host}:{f.LocalEndPoint.Port}"))
                : actual.Select(b => (Id: b.Key, Address: b.Value.ToString()));
            VerifyReachable(bootstrap, [.. advertised], options);
            var host = new EmbeddedKafkaHost(cluster, forwarders, bootstrap);
            cluster.BrokerStateChanged += host.OnBrokerStateChanged;
            return host;
        }
        catch
        {
            foreach (var forwarder in forwarders)
            {
                forwarder.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }

            cluster.Dispose();
            throw;
        }
    }

    /// <summary>Closes the fixed ports (and every connection through them), then stops the cluster. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Cluster.BrokerStateChanged -= OnBrokerStateChanged;
        foreach (var forwarder in _forwarders)
        {
            await forwarder.DisposeAsync();
        }

        Cluster.Dispose();
    }

    /// <summary>
    /// A broker that is down refuses connections on its fixed port too, exactly as the mock's own
    /// port does. (Accepting and then closing at once would make clients reconnect in a tight loop
    /// and back their reconnects off to the 10 s maximum.)
    /// </summary>
    private void OnBrokerStateChanged(int brokerId, bool up)
    {
        var forwarder = _forwarders[brokerId - 1];
        if (up)
        {
            forwarder.Resume();
        }
        else
        {
            forwarder.Pause();
        }
    }

    private static IPAddress ParseHost(string host)
    {
        // librdkafka builds "host:port" node names; IPv6 literals are mishandled by some versions.
        if (!IPAddress.TryParse(host, out var address) || address.AddressFamily != AddressFamily.InterNetwork || !IPAddress.IsLoopback(address))
        {
            throw new ArgumentException($"Host must be an IPv4 loopback address such as 127.0.0.1 (got '{host}').", nameof(host));
        }

        return address;
    }

    /// <summary>Broker id to the random endpoint it listens on, from a Metadata request.</summary>
    private static Dictionary<int, IPEndPoint> Brokers(string bootstrapServers, int expected)
    {
        using var admin = new BackgroundDisposed<IAdminClient>(Admin(bootstrapServers));
        var clock = Stopwatch.StartNew();
        while (true)
        {
            Metadata metadata;
            try
            {
                metadata = admin.Value.GetMetadata(MetadataTimeout);
            }
            catch (KafkaException e)
            {
                throw new InvalidOperationException($"The mock cluster at {bootstrapServers} did not answer a Metadata request: {e.Error.Reason}", e);
            }

            var brokers = metadata.Brokers.ToDictionary(b => b.BrokerId, b => new IPEndPoint(IPAddress.Parse(b.Host), b.Port));
            if (Enumerable.Range(1, expected).All(brokers.ContainsKey))
            {
                return brokers;
            }

            if (clock.Elapsed > MetadataTimeout)
            {
                throw new InvalidOperationException($"The mock cluster at {bootstrapServers} reported brokers [{string.Join(", ", brokers.Keys)}], expected 1..{expected}.");
            }

            Thread.Sleep(50);
        }
    }

    /// <summary>Waits until metadata fetched through the fixed ports advertises exactly <paramref name="advertised"/> and lists every topic.</summary>
    private static void VerifyReachable(string bootstrapServers, IReadOnlyCollection<(int Id, string Address)> advertised, EmbeddedKafkaHostOptions options)
    {
        var expected = advertised.ToHashSet();
        using var admin = new BackgroundDisposed<IAdminClient>(Admin(bootstrapServers));
        var clock = Stopwatch.StartNew();
        var seen = "nothing";
        while (clock.Elapsed < MetadataTimeout)
        {
            try
            {
                var metadata = admin.Value.GetMetadata(MetadataTimeout);
                var seenBrokers = metadata.Brokers.Select(b => (Id: b.BrokerId, Address: $"{b.Host}:{b.Port.ToString(CultureInfo.InvariantCulture)}")).ToHashSet();
                var topics = metadata.Topics.Where(t => t.Error.Code == ErrorCode.NoError).Select(t => t.Topic).ToHashSet(StringComparer.Ordinal);
                if (seenBrokers.SetEquals(expected) && options.Topics.All(t => topics.Contains(t.Topic)))
                {
                    return;
                }

                seen = $"brokers [{string.Join(", ", seenBrokers.Select(b => $"{b.Id}@{b.Address}"))}], topics [{string.Join(", ", topics)}]";
            }
            catch (KafkaException e)
            {
                seen = e.Message;
            }

            Thread.Sleep(50);
        }

        throw new InvalidOperationException($"The embedded broker at {bootstrapServers} did not become ready: saw {seen}.");
    }

    /// <summary>
    /// Disposes a client on the thread pool: destroying a librdkafka handle takes about 150 ms,
    /// which would double the start time for nothing.
    /// </summary>
    private readonly struct BackgroundDisposed<T>(T value) : IDisposable
        where T : IDisposable
    {
        public T Value { get; } = value;

        public void Dispose()
        {
            var value = Value;
            _ = Task.Run(value.Dispose);
        }
    }

    private static IAdminClient Admin(string bootstrapServers) =>
        new AdminClientBuilder(new AdminClientConfig
        {
            BootstrapServers = bootstrapServers,
            SocketTimeoutMs = (int)MetadataTimeout.TotalMilliseconds,
        })
        // Transient connection errors while starting are expected; the caller reports failures.
        .SetLogHandler((_, _) => { })
        .SetErrorHandler((_, _) => { })
        .Build();
}
