using System.Diagnostics;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Gateway.Connections;
using Realtime.Gateway.Routing;
using Realtime.Hosting;
using Realtime.Hosting.Telemetry;

namespace Realtime.Gateway.Delivery;

/// <summary>
/// Steps 5-6: consumes this node's delivery topic (and nothing else) and hands each event to
/// the local subscribers of its channel, encoded once and shared by all of them.
/// </summary>
/// <remarks>
/// The node is the only reader of its topic, so it assigns itself every partition instead of
/// joining a consumer group: no rebalance delay at start, none when a restarted node comes
/// back under the same id. Its position is still committed under its own group id, so a
/// restart resumes where the previous process stopped. An offset is stored once the event
/// has been queued on every local subscriber; what a node held in memory when it died is
/// recovered by its clients through their positions, never by the node topic.
/// </remarks>
internal sealed partial class NodeTopicConsumer(
    IOptions<KafkaOptions> kafkaOptions,
    PipelineNames names,
    NodeIdentity node,
    ChannelHub hub,
    TopicProvisioner provisioner,
    DeliveryStatus status,
    Telemetry.GatewayMetrics metrics,
    DeliveryLatency latency,
    ILogger<NodeTopicConsumer> logger) : BackgroundService
{
    private static readonly TimeSpan PollTimeout = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(5);

    // Used by the consume loop's one thread: a record's writes to small channels, started together.
    private readonly FanoutWrites.WriteBatch _writes = new();

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken stoppingToken)
    {
        var topic = names.NodeTopic(node.Id);
        try
        {
            provisioner.EnsureNodeTopicAsync(node.Id, stoppingToken).GetAwaiter().GetResult();
            var config = KafkaClientSettings.AtLeastOnceConsumer(kafkaOptions.Value, names.NodeGroupId(node.Id), $"gateway-{node.Id}");
            // The node's own topic may not exist yet on brokers that create topics on demand.
            config.AllowAutoCreateTopics = true;
            using var consumer = new ConsumerBuilder<byte[], byte[]>(config).WithLogging(logger).Build();

            var partitions = DiscoverPartitions(consumer, topic, stoppingToken);
            if (partitions.Count == 0)
            {
                return;
            }

            consumer.Assign(partitions.Select(p => new TopicPartitionOffset(p, Offset.Stored)));
            status.SetAssigned(partitions.Count);
            LogAssigned(topic, partitions.Count);

            ConsumeLoop(consumer, stoppingToken);

            try
            {
                consumer.Commit();
            }
            catch (KafkaException e)
            {
                LogCommitSkipped(e.Error.Reason);
            }

            consumer.Close();
            status.SetAssigned(0);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            LogCrashed(e);
            throw;
        }
    }

    private List<TopicPartition> DiscoverPartitions(IConsumer<byte[], byte[]> consumer, string topic, CancellationToken stoppingToken)
    {
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var delay = TimeSpan.FromMilliseconds(50);
        var attempt = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var metadata = admin.GetMetadata(topic, MetadataTimeout);
                var found = metadata.Topics.FirstOrDefault(t => t.Topic == topic);
                if (found is { Partitions.Count: > 0 } && found.Error.Code == ErrorCode.NoError)
                {
                    return [.. found.Partitions.Select(p => new TopicPartition(topic, p.PartitionId))];
                }
            }
            catch (KafkaException e)
            {
                if (attempt % 10 == 0)
                {
                    LogTopicNotReady(topic, e.Error.Reason);
                }
            }

            attempt++;
            stoppingToken.WaitHandle.WaitOne(delay);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 1_000));
        }

        return [];
    }

    private void ConsumeLoop(IConsumer<byte[], byte[]> consumer, CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            ConsumeResult<byte[], byte[]>? result;
            try
            {
                result = consumer.Consume(PollTimeout);
            }
            catch (ConsumeException e)
            {
                LogConsumeError(e.Error.Reason);
                continue;
            }

            if (result?.Message is null)
            {
                continue;
            }

            Deliver(result);
            consumer.StoreOffset(result);
        }
    }

    private void Deliver(ConsumeResult<byte[], byte[]> result)
    {
        try
        {
            if (result.Message.Headers is { } headers && headers.TryGetLastBytes(NodeTopicHeaders.Batch, out _))
            {
                try
                {
                    foreach (var delivery in NodeDeliveryBatch.Parser.ParseFrom(result.Message.Value).Deliveries)
                    {
                        Deliver(delivery, default, _writes);
                    }
                }
                finally
                {
                    _writes.Flush();
                }
            }
            else
            {
                // A single delivery per record: what fanouts before batching wrote.
                Deliver(NodeDelivery.Parser.ParseFrom(result.Message.Value), KafkaTraceContext.Extract(result.Message.Headers), batch: null);
            }
        }
        catch (InvalidProtocolBufferException)
        {
            // Nothing else writes this topic; a record that does not parse cannot be delivered
            // and must not stop the node. Skip it, loudly.
            LogUndecodable(result.Partition.Value, result.Offset.Value);
        }
    }

    private void Deliver(NodeDelivery delivery, ActivityContext parent, FanoutWrites.WriteBatch? batch)
    {
        var envelope = delivery.Event;
        if (envelope is null)
        {
            return;
        }

        metrics.EventIn();
        if (delivery.RoutedAtUnixMs > 0)
        {
            latency.RecordSince(DeliveryHop.FanoutToNode, delivery.RoutedAtUnixMs);
        }

        if (delivery.Traceparent.Length > 0)
        {
            parent = KafkaTraceContext.Parse(delivery.Traceparent, delivery.Tracestate);
        }

        // A sampled trace ends here: the span covers queueing the event on every local subscriber.
        // A delivery that carries no trace starts none (traces are sampled at the publish).
        using var activity = parent == default
            ? null
            : PipelineTelemetry.Tracing.StartActivity("deliver", ActivityKind.Consumer, parent);
        using var outgoing = new OutgoingEvent(envelope, delivery.Seq, delivery.Epoch);
        var subscribers = hub.Dispatch(envelope.Channel, outgoing, batch);
        activity?.SetTag("realtime.subscribers", subscribers);
    }

    [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "Consuming delivery topic {Topic} ({Partitions} partitions)")]
    private partial void LogAssigned(string topic, int partitions);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Delivery topic {Topic} not ready yet: {Reason}")]
    private partial void LogTopicNotReady(string topic, string reason);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Delivery consume error: {Reason}")]
    private partial void LogConsumeError(string reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "Skipped undecodable delivery record at {Partition}@{Offset}")]
    private partial void LogUndecodable(int partition, long offset);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Debug, Message = "Final commit skipped: {Reason}")]
    private partial void LogCommitSkipped(string reason);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Critical, Message = "Delivery consumer crashed")]
    private partial void LogCrashed(Exception exception);
}
