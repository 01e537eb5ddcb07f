using System.Collections.Concurrent;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Hosting;

namespace Realtime.Gateway.Replay;

/// <summary>
/// Reads events back from the ingress topic by offset: the durable replay window, as long as
/// Kafka retains. Jumps between the wanted offsets instead of reading the partition through, so
/// a quiet channel on a busy partition costs only its own records.
/// </summary>
internal sealed partial class IngressReader(
    IOptions<KafkaOptions> options,
    PipelineNames names,
    NodeIdentity node,
    ILogger<IngressReader> logger) : IDisposable
{
    /// <summary>Read through rather than seek when the next wanted offset is this close.</summary>
    private const long SeekDistance = 256;
    private const int PoolSize = 4;

    private readonly ConcurrentBag<IConsumer<byte[], byte[]>> _pool = [];

    /// <summary>
    /// The envelopes at <paramref name="offsets"/> (ascending) of one ingress partition, in order;
    /// null when any of them is no longer in the log (retention). Blocking: call off the request path.
    /// </summary>
    public List<EventEnvelope>? Read(int partition, IReadOnlyList<long> offsets, TimeSpan timeout)
    {
        var consumer = Rent();
        var topic = names.IngressTopic;
        var deadline = DateTime.UtcNow + timeout;
        try
        {
            consumer.Assign(new TopicPartitionOffset(topic, partition, offsets[0]));
            var events = new List<EventEnvelope>(offsets.Count);
            var next = 0;
            while (next < offsets.Count)
            {
                var remaining = deadline - DateTime.UtcNow;
                if (remaining <= TimeSpan.Zero)
                {
                    throw new TimeoutException($"Replay from {topic}/{partition} did not finish within {timeout}.");
                }

                var record = consumer.Consume(remaining);
                if (record is null)
                {
                    continue;
                }

                if (record.IsPartitionEOF)
                {
                    return null;
                }

                var offset = record.Offset.Value;
                if (offset < offsets[next])
                {
                    continue;
                }

                if (offset > offsets[next])
                {
                    // The wanted record is gone: older than the topic's retention.
                    return null;
                }

                events.Add(EventEnvelope.Parser.ParseFrom(record.Message.Value));
                next++;
                if (next < offsets.Count && offsets[next] - offset > SeekDistance)
                {
                    consumer.Seek(new TopicPartitionOffset(topic, partition, offsets[next]));
                }
            }

            return events;
        }
        catch (Exception e) when (e is KafkaException or InvalidProtocolBufferException)
        {
            LogReadFailed(partition, e.Message);
            throw new TimeoutException("Replay from Kafka failed.", e);
        }
        finally
        {
            consumer.Unassign();
            Return(consumer);
        }
    }

    private IConsumer<byte[], byte[]> Rent()
    {
        if (_pool.TryTake(out var consumer))
        {
            return consumer;
        }

        var config = KafkaClientSettings.AtLeastOnceConsumer(options.Value, $"{names.Namespace}.replay.{node.Id}", $"gateway-{node.Id}-replay");
        config.EnableAutoCommit = false;
        config.EnablePartitionEof = true;
        // A wanted offset below the log start lands on the first record left, which shows it is gone.
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        config.ConsumeResultFields = "none";
        return new ConsumerBuilder<byte[], byte[]>(config).WithLogging(logger).Build();
    }

    private void Return(IConsumer<byte[], byte[]> consumer)
    {
        if (_pool.Count < PoolSize)
        {
            _pool.Add(consumer);
        }
        else
        {
            consumer.Dispose();
        }
    }

    public void Dispose()
    {
        while (_pool.TryTake(out var consumer))
        {
            consumer.Close();
            consumer.Dispose();
        }
    }

    [LoggerMessage(EventId = 6000, Level = LogLevel.Warning, Message = "Replay read of ingress partition {Partition} failed: {Reason}")]
    private partial void LogReadFailed(int partition, string reason);
}
