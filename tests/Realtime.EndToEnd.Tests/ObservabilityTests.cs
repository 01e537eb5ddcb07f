using System.Text;
using Confluent.Kafka;
using Google.Protobuf;
using Grpc.Core;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Testing;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// What an SRE sees, read the way Prometheus reads it: consumer lag that follows the fanout,
/// a latency histogram that counts every delivery, and a publisher's trace carried to the node.
/// </summary>
public sealed class ObservabilityTests(ObservabilityTests.Pipeline shared, ITestOutputHelper output) : IClassFixture<ObservabilityTests.Pipeline>
{
    private LocalPipeline Stack => shared.Stack;

    [Fact]
    public async Task Ingress_lag_rises_while_the_fanout_is_paused_and_returns_to_zero_when_it_resumes()
    {
        var fanout = Stack.FanoutHttp[0];
        var channel = $"room:{Guid.NewGuid():N}";
        await using var client = await Stack.ConnectAsync(0, "watcher", "room:*");
        await client.SubscribeAsync(channel);
        await WaitForLagAsync(fanout, lag => lag == 0, "no lag before the pause");

        using var http = new HttpClient();
        (await http.PostAsync(new Uri(fanout, "/admin/pause"), null)).EnsureSuccessStatusCode();
        try
        {
            await PublishAsync(channel, 30);
            var (events, seconds) = await WaitForLagAsync(fanout, lag => lag >= 30, "lag while paused");
            output.WriteLine($"paused: lag {events} events, oldest {seconds:F1} s");
            // The age of the oldest unrouted event grows while nothing moves.
            await WaitForLagAsync(fanout, _ => true, "age grows", minAgeSeconds: seconds + 1);
            Assert.False(client.TryTakeEvent(out _), "an event was delivered while the fanout was paused");
        }
        finally
        {
            (await http.PostAsync(new Uri(fanout, "/admin/resume"), null)).EnsureSuccessStatusCode();
        }

        Assert.Equal(30, (await client.TakeEventsAsync(30, TimeSpan.FromSeconds(30))).Count);
        var (after, age) = await WaitForLagAsync(fanout, lag => lag == 0, "lag after resuming");
        Assert.Equal(0, age);
        output.WriteLine($"resumed: lag {after} events");

        // Each gateway reports its own delivery topic's lag the same way.
        var gateway = await PrometheusText.ScrapeAsync(Stack.Gateways[0].Http);
        Assert.Contains(gateway, s => s.Name == "realtime_consumer_lag_events" && s.Labels["topic"] == Stack.Names.NodeTopic("gw-0"));
    }

    [Fact]
    public async Task The_gateway_and_the_fanout_export_the_runtimes_garbage_collections_and_memory()
    {
        foreach (var service in new[] { Stack.Gateways[0].Http, Stack.FanoutHttp[0] })
        {
            var samples = await PrometheusText.ScrapeAsync(service);
            foreach (var generation in new[] { "gen0", "gen1", "gen2" })
            {
                Assert.Contains(samples, s => s.Name == "dotnet_gc_collections_total" && s.Labels.GetValueOrDefault("gc_heap_generation") == generation);
            }

            Assert.Contains(samples, s => s.Name == "dotnet_gc_pause_time_seconds_total");
            Assert.True(samples.Sum("dotnet_process_memory_working_set_bytes") > 0, $"no working set from {service}");
        }
    }

    [Fact]
    public async Task The_end_to_end_latency_histogram_counts_every_delivered_event()
    {
        const int Subscribers = 3, Events = 20;
        var gateway = Stack.Gateways[1].Http;
        var before = (await PrometheusText.ScrapeAsync(gateway)).Sum("realtime_delivery_latency_seconds_count", ("hop", "end_to_end"));
        var channel = $"room:{Guid.NewGuid():N}";
        var clients = new List<TestClient>();
        for (var i = 0; i < Subscribers; i++)
        {
            clients.Add(await Stack.ConnectAsync(1, $"reader{i}", "room:*"));
            await clients[^1].SubscribeAsync(channel);
        }

        await PublishAsync(channel, Events);
        foreach (var client in clients)
        {
            Assert.Equal(Events, (await client.TakeEventsAsync(Events, TimeSpan.FromSeconds(30))).Count);
        }

        // Recorded when the frame was written, so by now every one of them is counted.
        var samples = await PrometheusText.ScrapeAsync(gateway);
        Assert.Equal(Subscribers * Events, samples.Sum("realtime_delivery_latency_seconds_count", ("hop", "end_to_end")) - before);
        foreach (var hop in new[] { "fanout_to_node", "node_to_socket", "end_to_end" })
        {
            Assert.True(samples.Sum("realtime_delivery_latency_seconds_count", ("hop", hop)) > 0, $"no {hop} latency");
        }

        // The +Inf bucket holds every observation.
        Assert.Equal(
            samples.Sum("realtime_delivery_latency_seconds_count", ("hop", "end_to_end")),
            samples.Sum("realtime_delivery_latency_seconds_bucket", ("hop", "end_to_end"), ("le", "+Inf")));
        Assert.True(samples.Sum("realtime_gateway_frames_out_total") >= Subscribers * Events);
        foreach (var client in clients)
        {
            await client.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_trace_id_set_by_a_grpc_publisher_is_carried_to_the_nodes_delivery_topic()
    {
        var channel = $"room:{Guid.NewGuid():N}";
        await using var client = await Stack.ConnectAsync(0, "traced", "room:*");
        await client.SubscribeAsync(channel);
        var traceId = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var metadata = Stack.ServiceAuth("room:*");
        metadata.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8))}-01");
        await Stack.PublisherClient(0).PublishAsync(
            new PublishRequest { Channel = channel, EventType = "traced", Payload = ByteString.CopyFromUtf8("1") },
            metadata,
            deadline: DateTime.UtcNow.AddSeconds(30));
        await client.NextEventAsync();

        // The record the fanout wrote for gw-0 carries the publisher's trace, in its headers and in the envelope.
        var delivery = FindDelivery(channel);
        // The node continues the trace: the context travels with each delivery of the batch.
        Assert.Contains(traceId, delivery.Traceparent, StringComparison.Ordinal);
        Assert.Contains(traceId, delivery.Event.Trace.Traceparent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_event_that_enters_without_a_trace_is_routed_and_delivered_without_one()
    {
        // Traces are sampled where events enter. With a sampling ratio of 1 here, a route span that
        // started a trace of its own would put a traceparent into the delivery; none may be there.
        var channel = $"room:{Guid.NewGuid():N}";
        await using var client = await Stack.ConnectAsync(0, "untraced", "room:*");
        await client.SubscribeAsync(channel);
        using (var producer = new ProducerBuilder<byte[], byte[]>(new ProducerConfig { BootstrapServers = Stack.KafkaBootstrap, Acks = Acks.All }).Build())
        {
            var envelope = new EventEnvelope
            {
                EventId = Guid.NewGuid().ToString("N"),
                Channel = channel,
                EventType = "untraced",
                Payload = ByteString.CopyFromUtf8("1"),
                ContentType = "application/json",
                SchemaVersion = 1,
                PublishedAtUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                Publisher = new PublisherIdentity { Subject = "probe", NodeId = "test", Origin = PublishOrigin.Grpc },
            };
            await producer.ProduceAsync(
                Stack.Names.IngressTopic,
                new Message<byte[], byte[]> { Key = Encoding.UTF8.GetBytes(channel), Value = envelope.ToByteArray() },
                TestContext.Current.CancellationToken);
        }

        Assert.Equal("untraced", (string?)(await client.NextEventAsync())["event"]);
        var delivery = FindDelivery(channel);
        Assert.Equal(string.Empty, delivery.Traceparent);
        Assert.Equal(string.Empty, delivery.Tracestate);
    }

    /// <summary>Reads gw-0's delivery topic from the start for the delivery of <paramref name="channel"/>'s first event.</summary>
    private NodeDelivery FindDelivery(string channel)
    {
        var topic = Stack.Names.NodeTopic("gw-0");
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = Stack.KafkaBootstrap,
            GroupId = $"{Stack.Names.Namespace}.trace-probe",
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        }).Build();
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = Stack.KafkaBootstrap }).Build();
        var partitions = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single().Partitions;
        consumer.Assign(partitions.Select(p => new TopicPartitionOffset(topic, p.PartitionId, Offset.Beginning)));
        var deadline = DateTime.UtcNow.AddSeconds(20);
        var eofs = new HashSet<int>();
        while (DateTime.UtcNow < deadline && eofs.Count < partitions.Count)
        {
            var record = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (record is null)
            {
                continue;
            }

            if (record.IsPartitionEOF)
            {
                eofs.Add(record.Partition.Value);
                continue;
            }

            Assert.True(record.Message.Headers.TryGetLastBytes(NodeTopicHeaders.Batch, out _), "a node topic record without the batch header");
            var delivery = NodeDeliveryBatch.Parser.ParseFrom(record.Message.Value).Deliveries.FirstOrDefault(d => d.Event.Channel == channel);
            if (delivery is not null)
            {
                return delivery;
            }
        }

        Assert.Fail($"the event of {channel} was not found on {topic}");
        return null!;
    }

    private async Task PublishAsync(string channel, int count)
    {
        var batch = new PublishBatchRequest();
        for (var i = 1; i <= count; i++)
        {
            batch.Events.Add(new PublishRequest { Channel = channel, EventType = "n", Payload = ByteString.CopyFromUtf8(i.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
        }

        await Stack.PublisherClient(0).PublishBatchAsync(batch, Stack.ServiceAuth("room:*"), deadline: DateTime.UtcNow.AddSeconds(30));
    }

    /// <summary>Scrapes the fanout until its ingress lag (summed over partitions) satisfies the condition; returns it and the oldest age.</summary>
    private static async Task<(double Events, double Seconds)> WaitForLagAsync(Uri fanout, Func<double, bool> condition, string what, double minAgeSeconds = 0)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        (double Events, double Seconds) last = default;
        while (DateTime.UtcNow < deadline)
        {
            var samples = await PrometheusText.ScrapeAsync(fanout);
            var lag = samples.Where(s => s.Name == "realtime_consumer_lag_events").ToList();
            var age = samples.Where(s => s.Name == "realtime_consumer_lag_seconds").Select(s => s.Value).DefaultIfEmpty(0).Max();
            last = (lag.Sum(s => s.Value), age);
            if (lag.Count > 0 && condition(last.Events) && age >= minAgeSeconds)
            {
                return last;
            }

            await Task.Delay(250);
        }

        throw new TimeoutException($"{what}: the fanout's lag stayed at {last.Events} events, {last.Seconds:F1} s");
    }

    /// <summary>Two gateways and a fanout that measure lag every half second.</summary>
    public sealed class Pipeline(TestInfrastructure infrastructure) : PipelineFixture(infrastructure, "observability", gateways: 2, settings: new Dictionary<string, string?>
    {
        ["Telemetry__LagInterval"] = "00:00:00.500",
        ["Telemetry__TraceSamplingRatio"] = "1",
    });
}
