using System.Security.Cryptography;
using Confluent.Kafka;
using Grpc.Core;
using Grpc.Net.Client;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Hosting;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// A whole pipeline on loopback for one test class: gateways and fanout workers as real
/// processes (the built binaries), against the shared real Kafka-protocol broker and
/// redis-server, isolated from other tests by a namespace of its own.
/// </summary>
public sealed class LocalPipeline : IAsyncDisposable
{
    public const int IngressPartitions = 8;
    public const string Issuer = "realtime-test";
    public const string Audience = "realtime";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly TestInfrastructure _infrastructure;
    private readonly List<ManagedProcess> _fanouts = [];
    private readonly List<GatewayNode> _gateways = [];
    private readonly List<GrpcChannel> _channels = [];
    private IReadOnlyDictionary<string, string?>? _settings;
    private TestCertificate? _tls;

    private LocalPipeline(TestInfrastructure infrastructure, string @namespace)
    {
        _infrastructure = infrastructure;
        Names = new PipelineNames(@namespace);
        SigningKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(48));
    }

    public PipelineNames Names { get; }

    public string SigningKey { get; }

    public IReadOnlyList<GatewayNode> Gateways => _gateways;

    public IReadOnlyList<ManagedProcess> Fanouts => _fanouts;

    private readonly List<Uri> _fanoutHttp = [];

    public string KafkaBootstrap => _infrastructure.Kafka.BootstrapServers;

    /// <summary>True on the embedded broker (librdkafka's mock cluster), which does not enforce producer idempotence.</summary>
    public bool KafkaIsEmbedded => _infrastructure.Kafka.Kind == KafkaBrokerKind.Embedded;

    public string RedisConfiguration => _infrastructure.Redis.ConnectionString;

    public static async Task<LocalPipeline> StartAsync(
        TestInfrastructure infrastructure,
        string hint,
        int gateways = 2,
        int fanouts = 1,
        Func<LocalPipeline, Task>? beforeStart = null,
        IReadOnlyDictionary<string, string?>? settings = null,
        TestCertificate? tls = null)
    {
        var stack = new LocalPipeline(infrastructure, infrastructure.NewNamespace(hint)) { _settings = settings, _tls = tls };
        try
        {
            await infrastructure.Kafka.EnsureTopicAsync(stack.Names.IngressTopic, IngressPartitions);
            for (var i = 0; i < gateways; i++)
            {
                await infrastructure.Kafka.EnsureTopicAsync(stack.Names.NodeTopic(NodeId(i)), 4);
            }

            if (beforeStart is not null)
            {
                await beforeStart(stack);
            }

            for (var i = 0; i < fanouts; i++)
            {
                stack.StartFanout(i);
            }

            for (var i = 0; i < gateways; i++)
            {
                stack.StartGateway(i);
            }

            foreach (var gateway in stack._gateways)
            {
                await gateway.Process.WaitForLineAsync(l => l.Contains($"gateway {gateway.NodeId} ready", StringComparison.Ordinal), StartTimeout);
                if (tls is null)
                {
                    await gateway.Process.WaitForHttpOkAsync(new Uri(gateway.Http, "/readyz"), StartTimeout);
                }
                else
                {
                    await WaitForReadyOverTlsAsync(gateway, tls);
                }
            }

            foreach (var fanout in stack._fanouts)
            {
                await fanout.WaitForLineAsync(l => l.Contains("Fanout assigned partitions", StringComparison.Ordinal), StartTimeout);
            }

            return stack;
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    public static string NodeId(int index) => $"gw-{index}";

    public ManagedProcess StartFanout(int index)
    {
        var http = new Uri($"http://127.0.0.1:{FreePort.Next()}");
        var process = ManagedProcess.Start(ProcessSpec.DotnetDll(
            $"{Names.Namespace}-fanout-{index}",
            RepoPaths.ProjectOutput("src/Fanout", "Realtime.Fanout.dll"),
            CommonEnvironment(new Dictionary<string, string?>
            {
                ["Fanout__InstanceId"] = $"fanout-{index}",
                ["Fanout__HttpEndpoint"] = http.ToString(),
            })));
        _fanouts.Add(process);
        _fanoutHttp.Add(http);
        return process;
    }

    /// <summary>The HTTP endpoint (health, metrics, admin) of each fanout started, by index.</summary>
    public IReadOnlyList<Uri> FanoutHttp => _fanoutHttp;

    private void StartGateway(int index)
    {
        var nodeId = NodeId(index);
        // With a certificate both endpoints are https: wss:// and gRPC over TLS.
        var scheme = _tls is null ? "http" : "https";
        var http = new Uri($"{scheme}://127.0.0.1:{FreePort.Next()}");
        var grpc = new Uri($"{scheme}://127.0.0.1:{FreePort.Next()}");
        var process = ManagedProcess.Start(ProcessSpec.DotnetDll(
            $"{Names.Namespace}-{nodeId}",
            RepoPaths.ProjectOutput("src/Gateway", "Realtime.Gateway.dll"),
            CommonEnvironment(new Dictionary<string, string?>
            {
                ["Gateway__NodeId"] = nodeId,
                ["Gateway__HttpEndpoint"] = http.ToString(),
                ["Gateway__GrpcEndpoint"] = grpc.ToString(),
                ["Auth__SigningKey"] = SigningKey,
                ["Auth__Issuer"] = Issuer,
                ["Auth__Audience"] = Audience,
                ["Gateway__Tls__CertificatePath"] = _tls?.CertificatePath,
                ["Gateway__Tls__KeyPath"] = _tls?.KeyPath,
            })));
        _gateways.Add(new GatewayNode(nodeId, http, grpc, process));
    }

    private static async Task WaitForReadyOverTlsAsync(GatewayNode gateway, TestCertificate tls)
    {
        using var http = new HttpClient(tls.PinnedHandler()) { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + StartTimeout;
        var last = "no attempt";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var response = await http.GetAsync(new Uri(gateway.Http, "/readyz"));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }

                last = $"HTTP {(int)response.StatusCode}";
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                last = e.Message;
            }

            if (gateway.Process.HasExited)
            {
                throw new InvalidOperationException($"{gateway.Process} exited before {gateway.Http}readyz answered 2xx (last: {last}).");
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"{gateway.Http}readyz gave no 2xx answer over TLS within {StartTimeout} (last: {last}).");
    }

    private Dictionary<string, string?> CommonEnvironment(Dictionary<string, string?> extra)
    {
        extra["Pipeline__Namespace"] = Names.Namespace;
        extra["Kafka__BootstrapServers"] = KafkaBootstrap;
        extra["Kafka__ProvisionTopics"] = _infrastructure.Kafka.Kind == KafkaBrokerKind.Embedded ? "false" : "true";
        if (_infrastructure.Kafka.Kind == KafkaBrokerKind.Embedded)
        {
            // The mock broker holds an empty fetch for the whole wait and never answers it early.
            extra["Kafka__FetchWaitMaxMs"] = "5";
        }

        extra["Kafka__IngressPartitions"] = IngressPartitions.ToString(System.Globalization.CultureInfo.InvariantCulture);
        extra["Redis__Configuration"] = RedisConfiguration;
        extra["Logging__Console__FormatterName"] = "simple";
        extra["DOTNET_gcServer"] = "0";
        // Tests drive connections far harder than a person; the limits have tests of their own.
        extra["Gateway__PublishesPerSecond"] = "1000000";
        extra["Gateway__SubscribesPerSecond"] = "1000000";
        extra["Gateway__NewConnectionsPerSecond"] = "1000000";
        extra["Gateway__MaxConnectionsPerUser"] = "1000000";
        extra["Gateway__UserPublishesPerSecond"] = "1000000";
        foreach (var (key, value) in _settings ?? new Dictionary<string, string?>())
        {
            extra[key] = value;
        }

        return extra;
    }

    public string Token(string subject, params string[] channelPatterns) =>
        DevTokens.Mint(SigningKey, subject, channelPatterns, TimeSpan.FromMinutes(30), Issuer, Audience);

    public string TokenWith(string subject, string[] channelPatterns, TimeSpan lifetime, string? issuer = Issuer, string? audience = Audience, string? key = null, DateTime? notBefore = null) =>
        DevTokens.Mint(key ?? SigningKey, subject, channelPatterns, lifetime, issuer, audience, notBefore: notBefore);

    public Task<TestClient> ConnectAsync(int gateway, string subject, params string[] channelPatterns) =>
        TestClient.ConnectAsync(_gateways[gateway].WebSocket, Token(subject, channelPatterns), configure: _tls is null ? null : o => o.RemoteCertificateValidationCallback = _tls.Pin);

    public Publisher.PublisherClient PublisherClient(int gateway) => new(GrpcChannelTo(gateway));

    /// <summary>A gRPC channel to a gateway's gRPC port, disposed with the pipeline.</summary>
    public GrpcChannel GrpcChannelTo(int gateway)
    {
        var channel = _tls is null
            ? GrpcChannel.ForAddress(_gateways[gateway].Grpc)
            : GrpcChannel.ForAddress(_gateways[gateway].Grpc, new GrpcChannelOptions { HttpHandler = _tls.PinnedHandler() });
        lock (_channels)
        {
            _channels.Add(channel);
        }

        return channel;
    }

    public Grpc.Core.Metadata ServiceAuth(params string[] channelPatterns) =>
        new() { { "authorization", $"Bearer {Token("backend-service", channelPatterns)}" } };

    /// <summary>Sum of high watermarks over a topic's partitions: how many records were ever written to it.</summary>
    public long TopicEndOffsets(string topic)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = KafkaBootstrap }).Build();
        var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(10));
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = KafkaBootstrap, GroupId = $"{Names.Namespace}.probe" }).Build();
        return metadata.Topics.Single().Partitions
            .Sum(p => consumer.QueryWatermarkOffsets(new TopicPartition(topic, p.PartitionId), TimeSpan.FromSeconds(10)).High.Value);
    }

    /// <summary>
    /// Every record of the ingress topic as its envelope, partition by partition in offset order
    /// (so each channel's records are in the order the fanout sequenced them).
    /// </summary>
    public IReadOnlyList<EventEnvelope> ReadIngressLog(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig
        {
            BootstrapServers = KafkaBootstrap,
            GroupId = $"{Names.Namespace}.log-reader",
            EnableAutoCommit = false,
            FetchWaitMaxMs = 5,
        }).Build();
        var envelopes = new List<EventEnvelope>();
        for (var p = 0; p < IngressPartitions; p++)
        {
            var partition = new TopicPartition(Names.IngressTopic, p);
            var watermarks = consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10));
            if (watermarks.High.Value <= watermarks.Low.Value)
            {
                continue;
            }

            consumer.Assign(new TopicPartitionOffset(partition, watermarks.Low));
            ConsumeResult<Ignore, byte[]> record;
            do
            {
                record = consumer.Consume(deadline.Token);
                envelopes.Add(EventEnvelope.Parser.ParseFrom(record.Message.Value));
            }
            while (record.Offset.Value + 1 < watermarks.High.Value);
        }

        return envelopes;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        foreach (var process in _gateways.Select(g => g.Process).Concat(_fanouts))
        {
            await process.DisposeAsync();
        }
    }
}

public sealed record GatewayNode(string NodeId, Uri Http, Uri Grpc, ManagedProcess Process)
{
    public Uri WebSocket => new($"{(Http.Scheme == Uri.UriSchemeHttps ? "wss" : "ws")}://{Http.Authority}/ws");
}
