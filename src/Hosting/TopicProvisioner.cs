using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Realtime.Contracts;

namespace Realtime.Hosting;

/// <summary>
/// Creates the pipeline's topics when they are missing, on brokers that serve CreateTopics.
/// </summary>
/// <remarks>
/// The embedded broker does not serve CreateTopics; there the embedded host creates the
/// ingress topic and node topics are created on first use, so a failure here is logged and
/// start-up goes on. On a real cluster an operator may also create topics beforehand and
/// set <see cref="KafkaOptions.ProvisionTopics"/> to false.
/// </remarks>
public sealed partial class TopicProvisioner(
    IOptions<KafkaOptions> options,
    PipelineNames names,
    ILogger<TopicProvisioner> logger)
{
    private static readonly TimeSpan AdminTimeout = TimeSpan.FromSeconds(10);

    public Task EnsureIngressTopicAsync(CancellationToken cancellationToken) =>
        EnsureAsync(
            names.IngressTopic,
            options.Value.IngressPartitions,
            options.Value.IngressRetention,
            cancellationToken);

    public Task EnsureNodeTopicAsync(string nodeId, CancellationToken cancellationToken) =>
        EnsureAsync(
            names.NodeTopic(nodeId),
            options.Value.NodeTopicPartitions,
            options.Value.NodeTopicRetention,
            cancellationToken);

    private async Task EnsureAsync(string topic, int partitions, TimeSpan retention, CancellationToken cancellationToken)
    {
        var kafka = options.Value;
        if (!kafka.ProvisionTopics)
        {
            return;
        }

        using var admin = new AdminClientBuilder(KafkaClientSettings.Admin(kafka, "realtime-provisioner"))
            .WithLogging(logger)
            .Build();
        try
        {
            var metadata = admin.GetMetadata(topic, AdminTimeout);
            if (metadata.Topics.Any(t => t.Topic == topic && t.Error.Code == ErrorCode.NoError && t.Partitions.Count > 0))
            {
                return;
            }

            var spec = new TopicSpecification
            {
                Name = topic,
                NumPartitions = partitions,
                ReplicationFactor = kafka.ReplicationFactor,
                Configs = new Dictionary<string, string>
                {
                    ["retention.ms"] = KafkaClientSettings.Milliseconds(retention),
                },
            };
            await admin.CreateTopicsAsync([spec], new CreateTopicsOptions { RequestTimeout = AdminTimeout })
                .WaitAsync(AdminTimeout, cancellationToken);
            LogCreated(topic, partitions);
        }
        catch (CreateTopicsException e) when (e.Results.All(r => r.Error.Code is ErrorCode.TopicAlreadyExists or ErrorCode.NoError))
        {
            // Another process won the race: fine.
        }
        catch (Exception e) when (e is KafkaException or TimeoutException)
        {
            LogNotCreated(topic, e.Message);
        }
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Created topic {Topic} with {Partitions} partitions")]
    private partial void LogCreated(string topic, int partitions);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Could not create topic {Topic} ({Reason}); relying on the broker to have or create it")]
    private partial void LogNotCreated(string topic, string reason);
}
