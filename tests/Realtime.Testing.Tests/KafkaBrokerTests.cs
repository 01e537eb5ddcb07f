using System.Diagnostics;
using Confluent.Kafka;
using Realtime.Contracts;
using Realtime.Testing;

namespace Realtime.Testing.Tests;

public sealed class KafkaBrokerTests(TestInfrastructure infrastructure, ITestOutputHelper output)
{
    [Fact(Timeout = 30_000)]
    public async Task Produce_and_consume_round_trip_on_a_fresh_topic()
    {
        var kafka = infrastructure.Kafka;
        output.WriteLine($"{kafka.Kind} at {kafka.BootstrapServers}: {kafka.Reason}");
        var names = new PipelineNames(infrastructure.NewNamespace("round-trip"));
        await kafka.EnsureTopicAsync(names.IngressTopic, 3);
        await kafka.EnsureTopicAsync(names.IngressTopic, 3); // idempotent

        const int Count = 30;
        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = kafka.BootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = true,
        }).Build())
        {
            for (var i = 0; i < Count; i++)
            {
                var result = await producer.ProduceAsync(names.IngressTopic, new Message<string, string> { Key = $"room:{i % 5}", Value = i.ToString(System.Globalization.CultureInfo.InvariantCulture) }, TestContext.Current.CancellationToken);
                Assert.Equal(PersistenceStatus.Persisted, result.Status);
                Assert.InRange(result.Partition.Value, 0, 2);
            }
        }

        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = kafka.BootstrapServers,
            GroupId = names.FanoutGroupId,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
        }).Build();
        consumer.Subscribe(names.IngressTopic);
        var received = new List<ConsumeResult<string, string>>();
        var clock = Stopwatch.StartNew();
        while (received.Count < Count && clock.Elapsed < TimeSpan.FromSeconds(20) && !TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { Message: not null } result)
            {
                received.Add(result);
            }
        }

        consumer.Close();
        output.WriteLine($"received {received.Count} in {clock.ElapsedMilliseconds} ms");
        Assert.Equal(Count, received.Count);
        Assert.Equal(Enumerable.Range(0, Count), received.Select(r => int.Parse(r.Message.Value, System.Globalization.CultureInfo.InvariantCulture)).Order());
        // Per key (one partition each), in produce order.
        foreach (var key in received.GroupBy(r => r.Message.Key))
        {
            var values = key.Select(r => int.Parse(r.Message.Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(values.Order(), values);
            Assert.Single(key.Select(r => r.Partition.Value).Distinct());
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task Ensure_topic_creates_the_requested_partitions()
    {
        var kafka = infrastructure.Kafka;
        var topic = new PipelineNames(infrastructure.NewNamespace("partitions")).NodeTopic("gw-0");

        await kafka.EnsureTopicAsync(topic, 5);

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = kafka.BootstrapServers }).Build();
        TestContext.Current.CancellationToken.ThrowIfCancellationRequested();
        var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(10));
        Assert.Equal(5, metadata.Topics.Single().Partitions.Count);
    }

    [Fact]
    public void Embedded_cluster_is_exposed_only_for_the_embedded_kind()
    {
        var kafka = infrastructure.Kafka;

        Assert.Equal(kafka.Kind == KafkaBrokerKind.Embedded, kafka.Embedded is not null);
        Assert.False(string.IsNullOrWhiteSpace(kafka.BootstrapServers));
        Assert.False(string.IsNullOrWhiteSpace(kafka.Reason));
    }
}
