using System.Text;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Hosting;
using Realtime.Hosting.Telemetry;

namespace Realtime.Gateway.Publishing;

/// <summary>
/// Step 1: writes events into the ingress topic, keyed by channel so that a channel's events
/// stay in one partition, in order. Shared by every entry point (WebSocket, gRPC).
/// </summary>
/// <remarks>
/// Completes only when the broker has acknowledged the record with acks=all; the idempotent
/// producer keeps records of one channel in call order even across its own retries, so
/// publishes started in order land in order without waiting for each other.
/// </remarks>
internal sealed partial class IngressPublisher : IDisposable
{
    private static readonly Headers TransientHeaders = [new Header(IngressHeaders.Transient, "1"u8.ToArray())];

    private readonly IProducer<byte[], byte[]> _producer;
    private readonly string _topic;

    public IngressPublisher(IOptions<KafkaOptions> options, PipelineNames names, NodeIdentity node, ILogger<IngressPublisher> logger)
    {
        _topic = names.IngressTopic;
        var config = KafkaClientSettings.DurableProducer(options.Value, $"gateway-{node.Id}-ingress");
        // Delivery reports are read for the position the ack returns.
        config.DeliveryReportFields = "key,status,timestamp";
        _producer = new ProducerBuilder<byte[], byte[]>(config).WithLogging(logger).Build();
    }

    /// <summary>Publishes and returns where the event sits in the ingress topic. Throws <see cref="PublishFailedException"/> when Kafka did not acknowledge.</summary>
    public async Task<KafkaPosition> PublishAsync(EventEnvelope envelope, CancellationToken cancellationToken = default)
    {
        var headers = envelope.Transient ? TransientHeaders : null;
        if (System.Diagnostics.Activity.Current is { } activity)
        {
            // The publisher's trace goes along to the fanout and the node (W3C trace context).
            headers = envelope.Transient ? [.. TransientHeaders] : [];
            KafkaTraceContext.Inject(activity, headers);
        }

        var message = new Message<byte[], byte[]>
        {
            Key = Encoding.UTF8.GetBytes(envelope.Channel),
            Value = envelope.ToByteArray(),
            Headers = headers,
        };

        try
        {
            // The produce itself is not cancellable once queued: Kafka may still write it, so
            // the caller's cancellation only stops the wait.
            var result = await _producer.ProduceAsync(_topic, message, CancellationToken.None).WaitAsync(cancellationToken);
            return new KafkaPosition { Topic = _topic, Partition = result.Partition.Value, Offset = result.Offset.Value };
        }
        catch (ProduceException<byte[], byte[]> e)
        {
            throw new PublishFailedException(e.Error.Reason, e);
        }
        catch (KafkaException e)
        {
            throw new PublishFailedException(e.Error.Reason, e);
        }
    }

    public void Dispose()
    {
        _producer.Flush(TimeSpan.FromSeconds(10));
        _producer.Dispose();
    }
}

/// <summary>Kafka did not acknowledge a publish; the event may or may not have been written.</summary>
public sealed class PublishFailedException : Exception
{
    public PublishFailedException()
    {
    }

    public PublishFailedException(string message)
        : base(message)
    {
    }

    public PublishFailedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
