using System.Net;

namespace Realtime.EmbeddedKafka;

/// <summary>Options of <see cref="EmbeddedKafkaHost"/>.</summary>
public sealed class EmbeddedKafkaHostOptions
{
    /// <summary>Loopback address the brokers are reachable at.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Port of broker 1; broker N listens on <c>FirstPort + N - 1</c>.</summary>
    public int FirstPort { get; init; } = 9092;

    public int Brokers { get; init; } = 1;

    /// <summary>Topics created at start.</summary>
    public IReadOnlyList<(string Topic, int Partitions)> Topics { get; init; } = [];
}

/// <summary>
/// The embedded broker as the development stack runs it: a <see cref="MockKafkaCluster"/> whose
/// brokers are reachable and advertised at fixed loopback ports, with its topics created.
/// </summary>
public sealed class EmbeddedKafkaHost : IAsyncDisposable
{
    private readonly List<TcpForwarder> _forwarders;

    private EmbeddedKafkaHost(MockKafkaCluster cluster, List<TcpForwarder> forwarders, string bootstrapServers)
    {
        Cluster = cluster;
        _forwarders = forwarders;
        BootstrapServers = bootstrapServers;
    }

    public MockKafkaCluster Cluster { get; }

    /// <summary>The fixed addresses, comma-separated.</summary>
    public string BootstrapServers { get; }

    public static EmbeddedKafkaHost Start(EmbeddedKafkaHostOptions options)
    {
        var address = IPAddress.Parse(options.Host);
        var cluster = MockKafkaCluster.Start(options.Brokers);
        var forwarders = new List<TcpForwarder>();
        try
        {
            // The mock lists its brokers in id order with their random ports.
            var actual = cluster.BootstrapServers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            for (var id = 1; id <= options.Brokers; id++)
            {
                var target = IPEndPoint.Parse(actual[id - 1]);
                var port = options.FirstPort + id - 1;
                forwarders.Add(TcpForwarder.Start(new IPEndPoint(address, port), () => target));
                cluster.SetBrokerAdvertisedAddress(id, options.Host, port);
            }

            foreach (var (topic, partitions) in options.Topics)
            {
                cluster.CreateTopic(topic, partitions, Math.Min(3, options.Brokers));
            }

            return new EmbeddedKafkaHost(cluster, forwarders, string.Join(',', forwarders.Select(f => $"{options.Host}:{f.LocalEndPoint.Port}")));
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

    public async ValueTask DisposeAsync()
    {
        foreach (var forwarder in _forwarders)
        {
            await forwarder.DisposeAsync();
        }

        Cluster.Dispose();
    }
}
